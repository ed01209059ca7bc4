"""GB 11643 citizen ID, GB 32100 USCC and GB/T 36904 identifier: published vectors (docs/domain.md) and properties."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.codes import (
    USCC_ALPHABET,
    certificate_identifier,
    certificate_identifier_problem,
    citizen_id_check_char,
    citizen_id_problem,
    is_valid_certificate_identifier,
    is_valid_citizen_id,
    is_valid_uscc,
    mod37_36_check_char,
    uscc_check_char,
    uscc_problem,
)

TODAY = dt.date(2026, 11, 27)
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PUBLISHED_IDENTIFIERS = [
    "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F",
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
]


def _with_check(first17: str) -> str:
    return first17 + citizen_id_check_char(first17)


def _substitute(value: str, index: int, char: str) -> str:
    return value[:index] + char + value[index + 1 :]


# --- citizen ID: vectors and negatives -----------------------------------------------------------------
@pytest.mark.parametrize("value", ["11010519491231002X", "110105195001010039", "440524188001010014"])
def test_published_citizen_ids_validate(value: str) -> None:
    assert citizen_id_problem(value, today=TODAY) is None
    assert is_valid_citizen_id(value)


def test_lower_case_x_and_surrounding_spaces_are_accepted() -> None:
    assert is_valid_citizen_id(" 11010519491231002x ")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("11010519491231002", "length"),
        ("11010519491231002X0", "length"),
        ("", "length"),
        ("1101051949123100XX", "characters"),
        ("11010519491231O02X", "characters"),  # letter O typed for zero
        ("1101051949-231002X", "characters"),
        ("110105194912310029", "check_digit"),  # the published vector with its X changed
        ("110105195001010038", "check_digit"),
        ("99010519491231002X", "division"),
    ],
)
def test_invalid_citizen_ids(value: str, code: str) -> None:
    problem = citizen_id_problem(value, today=TODAY)
    assert problem is not None
    assert problem.code == code
    assert problem.message


def test_february_30_is_not_a_birth_date() -> None:
    value = _with_check("43030220000230123")
    problem = citizen_id_problem(value, today=TODAY)
    assert problem is not None and problem.code == "birth_date"
    assert "20000230" in problem.message


def test_leap_days() -> None:
    # 2000 is a leap year (divisible by 400), 1900 is not (divisible by 100).
    assert is_valid_citizen_id(_with_check("43030220000229123"), today=TODAY)
    problem = citizen_id_problem(_with_check("43030219000229123"), today=TODAY)
    assert problem is not None and problem.code == "birth_date"


def test_future_birth_date_is_refused() -> None:
    tomorrow = _with_check("43030220261128123")
    problem = citizen_id_problem(tomorrow, today=TODAY)
    assert problem is not None and problem.code == "birth_date"
    assert "future" in problem.message
    assert citizen_id_problem(_with_check("43030220261127123"), today=TODAY) is None  # born today is fine


def test_citizen_id_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        citizen_id_check_char("1234")
    with pytest.raises(ValueError):
        citizen_id_check_char("1101051949123100X")


# --- citizen ID: properties ----------------------------------------------------------------------------
DIVISIONS = st.sampled_from(["110105", "430302", "440524", "350100", "310230", "650102", "810000"])
BIRTH_DATES = st.dates(min_value=dt.date(1900, 1, 1), max_value=TODAY)
SEQUENCES = st.integers(min_value=0, max_value=999).map(lambda n: f"{n:03d}")


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    first17 = draw(DIVISIONS) + draw(BIRTH_DATES).strftime("%Y%m%d") + draw(SEQUENCES)
    return _with_check(first17)


@given(citizen_ids())
def test_valid_division_date_and_computed_check_char_validate(value: str) -> None:
    assert citizen_id_problem(value, today=TODAY) is None


@given(citizen_ids(), st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_any_single_substitution_in_a_citizen_id_is_detected(value: str, index: int, char: str) -> None:
    # Weights are non-zero mod 11 and digits differ by less than 11, so the weighted sum always changes.
    if value[index] == char:
        char = "0" if char != "0" else "1"
    assert not is_valid_citizen_id(_substitute(value, index, char), today=TODAY)


# --- USCC ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["91350100M000100Y43", "91310230MA1K314J7C", "11100000000013338W"])
def test_published_usccs_validate(value: str) -> None:
    assert uscc_problem(value) is None
    assert is_valid_uscc(value.lower())


@pytest.mark.parametrize("letter", list("IOSVZ"))
def test_uscc_refuses_letters_outside_the_alphabet(letter: str) -> None:
    problem = uscc_problem(_substitute("91350100M000100Y43", 8, letter))
    assert problem is not None and problem.code == "characters"
    assert letter in problem.message


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("91350100M000100Y4", "length"),
        ("91350100M000100Y433", "length"),
        ("91350100M000100Y44", "check_digit"),
        ("9135A100M000100Y43", "division"),
        ("91350100M00-100Y43", "characters"),
    ],
)
def test_invalid_usccs(value: str, code: str) -> None:
    problem = uscc_problem(value)
    assert problem is not None and problem.code == code


def test_uscc_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100Y")
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100I4")


USCC_CHARS = st.sampled_from(USCC_ALPHABET)


@st.composite
def usccs(draw: st.DrawFn) -> str:
    head = "".join(draw(st.lists(USCC_CHARS, min_size=2, max_size=2)))
    division = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=6, max_size=6)))
    body = "".join(draw(st.lists(USCC_CHARS, min_size=9, max_size=9)))
    first17 = head + division + body
    return first17 + uscc_check_char(first17)


@given(usccs())
def test_generated_usccs_validate(value: str) -> None:
    assert uscc_problem(value) is None


@given(usccs(), st.integers(min_value=0, max_value=17), USCC_CHARS)
def test_any_single_substitution_in_a_uscc_is_detected(value: str, index: int, char: str) -> None:
    # 31 is prime and every weight is non-zero mod 31, so one changed character always changes the sum.
    if value[index] == char:
        char = USCC_ALPHABET[(USCC_ALPHABET.index(char) + 1) % len(USCC_ALPHABET)]
    assert not is_valid_uscc(_substitute(value, index, char))


# --- GB/T 36904 e-certificate identifier ---------------------------------------------------------------
@pytest.mark.parametrize("value", PUBLISHED_IDENTIFIERS)
def test_published_identifiers_validate(value: str) -> None:
    assert certificate_identifier_problem(value) is None


@pytest.mark.parametrize("value", PUBLISHED_IDENTIFIERS)
def test_identifiers_rebuild_from_their_parts(value: str) -> None:
    parts = value.removeprefix("1.2.156.3005.2.").split(".")
    assert certificate_identifier(parts[0], parts[1], parts[2], int(parts[3])) == value


@pytest.mark.parametrize("value", PUBLISHED_IDENTIFIERS)
def test_identifier_with_wrong_check_char_is_refused(value: str) -> None:
    wrong = value[:-1] + ("0" if value[-1] != "0" else "1")
    problem = certificate_identifier_problem(wrong)
    assert problem is not None and problem.code == "check_digit"


@pytest.mark.parametrize(
    "value",
    [
        "1.2.156.3005.1.11100000000013338W032.11220000013544541J.2430599.001.F",  # wrong arc
        "1.2.156.3005.2.11100000000013338W032.11220000013544541.2430599.001.F",  # issuer 17 chars
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.01.F",  # version 2 digits
        "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001",  # no check char
        "",
    ],
)
def test_malformed_identifiers_are_refused(value: str) -> None:
    problem = certificate_identifier_problem(value)
    assert problem is not None and problem.code == "format"


def test_mod37_36_check_char_rejects_characters_outside_the_alphabet() -> None:
    with pytest.raises(ValueError):
        mod37_36_check_char("ABC-1")


def test_certificate_identifier_refuses_a_version_that_does_not_fit_three_digits() -> None:
    with pytest.raises(ValueError):
        certificate_identifier("11100000000013338W032", "11220000013544541J", "1", 1000)


SERIALS = st.text(alphabet=ALNUM, min_size=1, max_size=20)
VERSIONS = st.integers(min_value=0, max_value=999)


@st.composite
def identifiers(draw: st.DrawFn) -> str:
    type_code = draw(usccs()) + f"{draw(st.integers(min_value=0, max_value=999)):03d}"
    return certificate_identifier(type_code, draw(usccs()), draw(SERIALS), draw(VERSIONS))


@given(identifiers())
def test_certificate_identifier_output_always_validates(value: str) -> None:
    assert certificate_identifier_problem(value) is None


@given(st.text(alphabet=ALNUM, min_size=1, max_size=60), st.data())
def test_mod37_36_detects_every_single_substitution(payload: str, data: st.DataObject) -> None:
    check = mod37_36_check_char(payload)
    index = data.draw(st.integers(min_value=0, max_value=len(payload) - 1))
    char = data.draw(st.sampled_from(ALNUM).filter(lambda c: c != payload[index]))
    assert mod37_36_check_char(_substitute(payload, index, char)) != check


@given(identifiers(), st.data())
def test_any_single_substitution_in_an_identifier_is_detected(value: str, data: st.DataObject) -> None:
    # Only the coded characters (type, issuer, serial, version, check), not the fixed arc or the dots.
    prefix = len("1.2.156.3005.2.")
    positions = [i for i in range(prefix, len(value)) if value[i] != "."]
    index = data.draw(st.sampled_from(positions))
    char = data.draw(st.sampled_from(ALNUM).filter(lambda c: c != value[index]))
    assert not is_valid_certificate_identifier(_substitute(value, index, char))
