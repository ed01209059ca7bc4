"""Tracking numbers (division + date + sequence + MOD 37,36 check character) and query codes."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.codes import mod37_36_check_char
from gateway.cases import numbers
from gateway.privacy import FieldCipher, KeyRing


def test_layout_and_check_char() -> None:
    n = numbers.tracking_number(dt.date(2026, 3, 2), 42)
    assert len(n) == numbers.TRACKING_NUMBER_LENGTH == 21
    assert n.startswith("43030220260302000042")
    assert n[-1] == mod37_36_check_char(n[:-1])
    assert numbers.tracking_number_problem(n) is None


@given(st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)), st.integers(1, 999_999))
def test_any_single_substitution_is_caught(day: dt.date, seq: int) -> None:
    n = numbers.tracking_number(day, seq)
    assert numbers.tracking_number_problem(n) is None
    for i in range(len(n) - 1):
        for repl in "0123456789":
            if repl != n[i]:
                wrong = n[:i] + repl + n[i + 1 :]
                assert numbers.tracking_number_problem(wrong) is not None


def test_bad_shapes() -> None:
    assert numbers.tracking_number_problem("") is not None
    assert numbers.tracking_number_problem("4303022026133100000" + "10") is not None
    with pytest.raises(numbers.SequenceExhausted):
        numbers.tracking_number(dt.date(2026, 1, 5), 1_000_000)
    with pytest.raises(numbers.SequenceExhausted):
        numbers.tracking_number(dt.date(2026, 1, 5), 0)


def test_query_codes() -> None:
    codes = {numbers.new_query_code() for _ in range(200)}
    assert len(codes) == 200
    for c in codes:
        assert numbers.is_query_code(c)
        assert not set(c) & set("01ILO")
    cipher = FieldCipher(KeyRing.generate())
    code = next(iter(codes))
    h = numbers.query_code_hash(cipher, "T1", code)
    assert code not in h and len(h) == 64
    assert numbers.query_code_matches(cipher, "T1", code.lower()[:4] + " " + code.lower()[4:], h)
    assert not numbers.query_code_matches(cipher, "T2", code, h)
    assert not numbers.query_code_matches(FieldCipher(KeyRing.generate()), "T1", code, h)
    assert not numbers.query_code_matches(cipher, "T1", code, None)
