"""Value rules: how one department writes a value, declared in its file (``[mapping.rules.<field>]``).

A rule is data, one of three kinds (a tagged union on ``kind``), and compiles to one function per field that the
mapping runs on every record:

- ``date``: the value is a date or a time in one of the listed ``formats`` (tried in order): ``yyyyMMdd``,
  ``yyyy-MM-dd``, ``yyyy/MM/dd``, ``yyyy.MM.dd``, ``yyyy年M月d日``, ``yyyyMMddHHmmss``, ``yyyy-MM-dd HH:mm:ss``,
  ``iso`` (ISO 8601), ``epoch_ms`` and ``epoch_s``. A time written without an offset is in the mapping's
  ``utc_offset`` (Beijing time, +08:00, by default); a date field takes the date of the time in that zone.
- ``code``: the value is one of the department's own codes, translated by ``table`` into ours (a status, a
  holder code type, a certificate type), with an optional ``default`` for codes not listed.
- ``text``: the value is text, stripped of surrounding white space.

Every kind takes ``sentinels``: texts that stand for "no value" — ``no_expiry`` (long-term, 长期; ``valid_until``
only) or ``unknown`` (the department does not know: an optional field takes its default, a required one makes the
record a rejection). A value that fits no format, code or sentinel raises `RuleError`, which names the rule and the
kind of value it got, never the value (it may be personal).

This module depends on nothing of ours, so the spec (which holds the rules) and the mapping (which runs them) can
both import it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec

Sentinel = Literal["no_expiry", "unknown"]


class _Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    #: Texts that stand for no value (compared after stripping white space; numbers by their decimal text).
    sentinels: dict[str, Sentinel] = {}


class DateRule(_Rule, frozen=True, tag="date"):
    """A date or time in one of ``formats`` (tried in order)."""

    formats: list[str]


class CodeRule(_Rule, frozen=True, tag="code"):
    """One of the department's codes -> ours. ``default``: ours for a code not in ``table`` (else a rejection)."""

    table: dict[str, str]
    default: str | None = None


class TextRule(_Rule, frozen=True, tag="text"):
    """Text, stripped of surrounding white space (``strip = false`` keeps it)."""

    strip: bool = True


ValueRule = DateRule | CodeRule | TextRule
RULE_KINDS: tuple[str, ...] = ("date", "code", "text")


class RuleError(ValueError):
    """A value does not fit its rule. ``rule`` names the rule, ``value_kind`` the kind of value (never the value)."""

    def __init__(self, message: str, *, rule: str, value_kind: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.value_kind = value_kind


def value_kind(value: Any) -> str:
    """What a value is, without what it says: ``null``, ``text(8)``, ``integer``, ``object`` …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "empty text" if value == "" else f"text({len(value)})"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.date):
        return "date"
    return type(value).__name__


# --- date formats ------------------------------------------------------------------------------------------------

_DateParser = Callable[[Any, dt.timezone], dt.date | dt.datetime | None]


def _digits(pattern: str, *, time: bool) -> _DateParser:
    regex = re.compile(pattern)

    def parse(value: Any, tz: dt.timezone) -> dt.date | dt.datetime | None:
        if not isinstance(value, str):
            return None
        m = regex.fullmatch(value)
        if m is None:
            return None
        parts = [int(g) for g in m.groups()]
        if time:
            return dt.datetime(*parts, tzinfo=tz)  # type: ignore[arg-type,misc]
        return dt.date(*parts[:3])

    return parse


def _iso(value: Any, tz: dt.timezone) -> dt.date | dt.datetime | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    if len(value) == 10:
        return dt.date.fromisoformat(value)
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def _epoch(scale: int) -> _DateParser:
    def parse(value: Any, tz: dt.timezone) -> dt.date | dt.datetime | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if not isinstance(value, int | float):
            return None
        return dt.datetime.fromtimestamp(value / scale, tz)

    return parse


#: The date and time formats a rule may list (Java-style patterns, as department documentation writes them).
DATE_FORMATS: dict[str, _DateParser] = {
    "yyyyMMdd": _digits(r"(\d{4})(\d{2})(\d{2})", time=False),
    "yyyy-MM-dd": _digits(r"(\d{4})-(\d{2})-(\d{2})", time=False),
    "yyyy/MM/dd": _digits(r"(\d{4})/(\d{2})/(\d{2})", time=False),
    "yyyy.MM.dd": _digits(r"(\d{4})\.(\d{2})\.(\d{2})", time=False),
    "yyyy年M月d日": _digits(r"(\d{4})年(\d{1,2})月(\d{1,2})日", time=False),
    "yyyyMMddHHmmss": _digits(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})", time=True),
    "yyyy-MM-dd HH:mm:ss": _digits(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", time=True),
    "iso": _iso,
    "epoch_ms": _epoch(1000),
    "epoch_s": _epoch(1),
}

#: Fields a date rule may be declared for, and what they hold.
DATE_FIELDS: dict[str, Literal["date", "datetime"]] = {
    "issue_date": "date",
    "valid_from": "date",
    "valid_until": "date",
    "updated_at": "datetime",
}

# --- our codes ---------------------------------------------------------------------------------------------------

#: Our certificate status codes by name (the names a code table may use instead of the codes).
STATUS_CODES: dict[str, str] = {
    "valid": "01",
    "suspended": "02",
    "revoked": "03",
    "cancelled": "04",
    "lapsed": "05",
    "transferred": "06",
    "withdrawn": "07",
    "other": "99",
}
#: Our holder code types by name.
HOLDER_CODE_TYPES: dict[str, str] = {"citizen_id": "111", "uscc": "001"}


def code_targets(field: str, types: Mapping[str, str]) -> dict[str, str] | None:
    """What a code table for ``field`` may translate to (name or code -> our code); None: any text."""
    if field == "status":
        return {**STATUS_CODES, **{code: code for code in STATUS_CODES.values()}}
    if field == "holder_code_type":
        return {**HOLDER_CODE_TYPES, **{code: code for code in HOLDER_CODE_TYPES.values()}}
    if field == "type_code":
        return {**dict(types), **{code: code for code in types.values()}}
    return None


# --- checking and compiling ---------------------------------------------------------------------------------------


def rule_problems(field: str, rule: ValueRule, *, types: Mapping[str, str]) -> list[tuple[str, str]]:
    """What is wrong with one rule, as ``(path under the rule, message with the fix)``."""
    problems: list[tuple[str, str]] = []
    for text, meaning in rule.sentinels.items():
        if meaning == "no_expiry" and field != "valid_until":
            problems.append(
                (f"sentinels.{text!r}", 'no_expiry only means something for valid_until; use "unknown" here')
            )
    if isinstance(rule, DateRule):
        if field not in DATE_FIELDS:
            problems.append(
                ("kind", f'a date rule applies to {", ".join(DATE_FIELDS)}; use kind = "code" or "text" for {field}')
            )
        if not rule.formats:
            problems.append(("formats", 'list at least one format, e.g. formats = ["yyyy-MM-dd"]'))
        for index, name in enumerate(rule.formats):
            if name not in DATE_FORMATS:
                problems.append((f"formats[{index}]", f"unknown format {name!r}; use one of {', '.join(DATE_FORMATS)}"))
    elif isinstance(rule, CodeRule):
        if field in DATE_FIELDS:
            problems.append(("kind", f'{field} is a date: use kind = "date" with its formats'))
        if not rule.table:
            problems.append(("table", 'list the department\'s codes, e.g. table = { "1" = "valid" }'))
        targets = code_targets(field, types)
        if targets is not None:
            allowed = ", ".join(dict.fromkeys(targets))
            for code, ours in rule.table.items():
                if ours not in targets:
                    problems.append((f"table.{code!r}", f"{ours!r} is not ours for {field}; use one of {allowed}"))
            if rule.default is not None and rule.default not in targets:
                problems.append(("default", f"{rule.default!r} is not ours for {field}; use one of {allowed}"))
    elif field in DATE_FIELDS:
        problems.append(("kind", f'{field} is a date: use kind = "date" with its formats'))
    return problems


Compiled = Callable[[Any, dt.timezone], Any]


def rule_name(rule: ValueRule) -> str:
    """The rule as a short label for rejection reasons: ``date[yyyy年M月d日|epoch_ms]``, ``code``, ``text``."""
    if isinstance(rule, DateRule):
        return f"date[{'|'.join(rule.formats)}]"
    if isinstance(rule, CodeRule):
        return "code"
    return "text"


def compile_rule(field: str, rule: ValueRule, *, required: bool, types: Mapping[str, str]) -> Compiled:
    """The function that applies ``rule`` to a raw value of ``field`` (raises `RuleError`)."""
    name = rule_name(rule)
    sentinels = dict(rule.sentinels)

    def sentinel(value: Any) -> tuple[bool, Any]:
        """(matched, what the sentinel means) for texts and numbers listed in ``sentinels``."""
        if not sentinels or value is None or isinstance(value, bool | dict | list):
            return False, None
        key = value.strip() if isinstance(value, str) else str(value)
        meaning = sentinels.get(key)
        if meaning is None:
            return False, None
        if meaning == "unknown" and required:
            raise RuleError(f"the department does not know it (sentinel {meaning})", rule=name, value_kind="sentinel")
        return True, None

    def absent(value: Any) -> Any:
        if required:
            raise RuleError("missing or null", rule=name, value_kind=value_kind(value))
        return None

    if isinstance(rule, DateRule):
        parsers = [DATE_FORMATS[f] for f in rule.formats]
        want_datetime = DATE_FIELDS.get(field) == "datetime"

        # Bulk data repeats its dates (issue dates, validity starts): texts already read are looked up, not parsed.
        # One compiled rule serves one mapping, hence one time zone.
        seen: dict[str, Any] = {}

        def read(value: Any, tz: dt.timezone) -> Any:
            text = value.strip() if isinstance(value, str) else value
            for parse in parsers:
                try:
                    result = parse(text, tz)
                except (ValueError, OverflowError, OSError):
                    result = None  # e.g. 2024-02-30: the pattern fits, the calendar does not
                if result is None:
                    continue
                if want_datetime:
                    if isinstance(result, dt.datetime):
                        return result
                    return dt.datetime.combine(result, dt.time(), tz)
                return result.astimezone(tz).date() if isinstance(result, dt.datetime) else result
            raise RuleError(
                f"fits none of the formats {', '.join(rule.formats)}", rule=name, value_kind=value_kind(value)
            )

        def apply_date(value: Any, tz: dt.timezone) -> Any:
            if type(value) is str:
                known = seen.get(value)
                if known is not None:
                    return known
            matched, meaning = sentinel(value)
            if matched:
                return meaning
            if value is None:
                return absent(value)
            result = read(value, tz)
            if type(value) is str and len(seen) < 4096:
                seen[value] = result
            return result

        return apply_date

    if isinstance(rule, CodeRule):
        targets = code_targets(field, types)
        resolve: Callable[[str], str] = (lambda ours: targets[ours]) if targets is not None else (lambda ours: ours)
        table = {code: resolve(ours) for code, ours in rule.table.items()}
        default = resolve(rule.default) if rule.default is not None else None

        def apply_code(value: Any, tz: dt.timezone) -> Any:
            if type(value) is str:
                found = table.get(value)  # the common case: a code as listed
                if found is not None:
                    return found
            matched, meaning = sentinel(value)
            if matched:
                return meaning
            if value is None:
                return absent(value)
            if isinstance(value, bool | dict | list):
                raise RuleError("a code must be text or a number", rule=name, value_kind=value_kind(value))
            key = value.strip() if isinstance(value, str) else str(value)
            ours = table.get(key, default)
            if ours is None:
                raise RuleError("not a code in the table", rule=name, value_kind=value_kind(value))
            return ours

        return apply_code

    strip = rule.strip

    def apply_text(value: Any, tz: dt.timezone) -> Any:
        matched, meaning = sentinel(value)
        if matched:
            return meaning
        if value is None:
            return absent(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise RuleError("expected text", rule=name, value_kind=value_kind(value))
        return value.strip() if strip else value

    return apply_text


__all__ = [
    "DATE_FIELDS",
    "DATE_FORMATS",
    "HOLDER_CODE_TYPES",
    "RULE_KINDS",
    "STATUS_CODES",
    "CodeRule",
    "DateRule",
    "RuleError",
    "Sentinel",
    "TextRule",
    "ValueRule",
    "code_targets",
    "compile_rule",
    "rule_name",
    "rule_problems",
    "value_kind",
]
