"""National code standards, each written once: GB 11643 citizen ID, GB 32100 unified social credit code,
GB/T 36904 e-certificate identifier (ISO 7064 MOD 37,36 check character).

Validators return a `CodeProblem` (what is wrong, in words a clerk can act on) or ``None`` when valid;
``check_*`` functions compute the check character so data generators and simulators make valid codes.
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

# --- GB 11643-1999 citizen identity number -------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^\d{17}[\dX]$")
#: GB/T 2260 province-level prefixes in use (first two digits of the division code).
_PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
        "71", "81", "82",
    }
)  # fmt: skip


class CodeProblem(msgspec.Struct, frozen=True):
    """Why a code is invalid; ``message`` is meant for the person who typed it."""

    code: str
    message: str


def citizen_id_check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def citizen_id_problem(value: str, *, today: dt.date | None = None) -> CodeProblem | None:
    """Validate an 18-character citizen ID number (lower-case ``x`` is accepted as ``X``)."""
    v = value.strip().upper()
    if len(v) != 18:
        return CodeProblem("length", f"must be 18 characters, got {len(v)}")
    if not _ID_RE.match(v):
        return CodeProblem("characters", "must be 17 digits followed by a digit or X")
    if v[:2] not in _PROVINCES or (v[2:6] == "0000" and v[:2] not in {"71", "81", "82"}):
        return CodeProblem("division", f"division code {v[:6]} is not a GB/T 2260 code")
    try:
        born = dt.date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return CodeProblem("birth_date", f"birth date {v[6:14]} is not a real date")
    today = today or dt.date.today()
    if born > today:
        return CodeProblem("birth_date", f"birth date {born.isoformat()} is in the future")
    if born.year < 1880:
        return CodeProblem("birth_date", f"birth year {born.year} is implausible")
    expected = citizen_id_check_char(v[:17])
    if v[17] != expected:
        return CodeProblem("check_digit", "check digit does not match; re-check the number as typed")
    return None


def is_valid_citizen_id(value: str, *, today: dt.date | None = None) -> bool:
    return citizen_id_problem(value, today=today) is None


def normalise_citizen_id(value: str) -> str:
    return value.strip().upper()


# --- GB 32100-2015 unified social credit code ----------------------------------------------------------
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    if len(first17) != 17 or any(c not in _USCC_VALUE for c in first17):
        raise ValueError("need 17 characters from the GB 32100 alphabet")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_problem(value: str) -> CodeProblem | None:
    v = value.strip().upper()
    if len(v) != 18:
        return CodeProblem("length", f"must be 18 characters, got {len(v)}")
    bad = sorted({c for c in v if c not in _USCC_VALUE})
    if bad:
        return CodeProblem("characters", f"characters {''.join(bad)} are not allowed (no I, O, S, V, Z)")
    if not v[2:8].isdigit():
        return CodeProblem("division", "positions 3-8 must be the registering authority's division code")
    if v[17] != uscc_check_char(v[:17]):
        return CodeProblem("check_digit", "check character does not match")
    return None


def is_valid_uscc(value: str) -> bool:
    return uscc_problem(value) is None


# --- GB/T 36904 e-certificate identifier, ISO 7064 MOD 37,36 -------------------------------------------
_MOD36_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MOD36_VALUE = {c: i for i, c in enumerate(_MOD36_ALPHABET)}
IDENTIFIER_PREFIX = "1.2.156.3005.2."
_IDENTIFIER_RE = re.compile(
    r"^1\.2\.156\.3005\.2\.(?P<type>[0-9A-Z]{18}\d{3})\.(?P<issuer>[0-9A-Z]{18})\.(?P<serial>[0-9A-Z]+)"
    r"\.(?P<version>\d{3})\.(?P<check>[0-9A-Z])$"
)


def _mod37_36_steps() -> dict[str, tuple[int, ...]]:
    """For each character, the next state of the MOD 37,36 recurrence from every state 0..36.

    The recurrence is p' = (((p + value) mod 36 or 36) * 2) mod 37; tabulating it per character turns the check
    into one tuple index per character (the sync verifies every certificate identifier it stores).
    """
    m = 36
    return {
        ch: tuple((((p + value) % m or m) * 2) % (m + 1) for p in range(m + 1)) for ch, value in _MOD36_VALUE.items()
    }


_MOD36_STEP = _mod37_36_steps()


def mod37_36_check_char(payload: str) -> str:
    """ISO 7064 MOD 37,36 (hybrid system, alphabet 0-9A-Z) check character."""
    p = 36
    step = _MOD36_STEP
    try:
        for ch in payload.upper():
            p = step[ch][p]
    except KeyError as exc:
        raise ValueError(f"character {exc.args[0]!r} is not in 0-9A-Z") from None
    return _MOD36_ALPHABET[(37 - p) % 36]


def certificate_identifier(type_code: str, issuer_code: str, serial: str, version: int = 1) -> str:
    """Build a GB/T 36904 identifier with its check character."""
    if not 0 <= version <= 999:  # the version field is exactly 3 digits; more would not validate
        raise ValueError(f"version must be 0-999, got {version}")
    ver = f"{version:03d}"
    check = mod37_36_check_char(type_code + issuer_code + serial + ver)
    return f"{IDENTIFIER_PREFIX}{type_code}.{issuer_code}.{serial}.{ver}.{check}"


def certificate_identifier_problem(value: str) -> CodeProblem | None:
    m = _IDENTIFIER_RE.match(value.strip().upper())
    if m is None:
        return CodeProblem(
            "format", "must be 1.2.156.3005.2.{type code}.{issuer USCC}.{serial}.{3-digit version}.{check}"
        )
    payload = m["type"] + m["issuer"] + m["serial"] + m["version"]
    if m["check"] != mod37_36_check_char(payload):
        return CodeProblem("check_digit", "MOD 37,36 check character does not match")
    return None


def is_valid_certificate_identifier(value: str) -> bool:
    return certificate_identifier_problem(value) is None
