"""Fault injection for the simulated department systems (docs/simulators.md, "Faults").

``--faults SPEC`` with ``SPEC = dept:fault[=value][,fault…][;dept:…]`` and ``*`` for every department, e.g.
``*:latency=50;civil_affairs:rate_limit=0.3;health:hang=0.1,malformed=0.2``. Entries apply in order, so a later
entry overrides a field an earlier ``*`` entry set. A probability fault without a value means 1 (always).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from demokit.simulators.registry import DEPARTMENT_CODES

#: Delays (milliseconds) are capped so a typo cannot hang a test run for hours.
MAX_DELAY_MS = 600_000.0
PROBABILITY_FAULTS = ("error_rate", "rate_limit", "hang", "malformed", "tampered", "revoked")
DELAY_FAULTS = ("latency", "jitter")
FAULT_NAMES = DELAY_FAULTS + PROBABILITY_FAULTS


class FaultSpecError(ValueError):
    """A fault spec is invalid; the message says which part and why."""


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The faults one department injects. Delays in milliseconds, the rest probabilities 0..1 per request/record."""

    latency: float = 0.0  # fixed delay before answering
    jitter: float = 0.0  # extra delay, uniform in [0, jitter]
    error_rate: float = 0.0  # 503 with a problem body
    rate_limit: float = 0.0  # 429 with Retry-After: 1
    hang: float = 0.0  # accept the request, never answer
    malformed: float = 0.0  # 200 with a truncated body (certificate responses)
    tampered: float = 0.0  # per record: holder name changed after signing
    revoked: float = 0.0  # per record: served with status 03, validly re-signed

    @property
    def active(self) -> bool:
        return any(getattr(self, name) for name in FAULT_NAMES)

    def describe(self) -> str:
        """The spec fragment for these faults (``latency=50,hang=0.1``), empty when none."""
        return ",".join(f"{name}={_number(getattr(self, name))}" for name in FAULT_NAMES if getattr(self, name))

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FAULT_NAMES}


NO_FAULTS = Faults()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _checked(name: str, value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{where}{name}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise FaultSpecError(f"{where}{name}: must be a finite number")
    if name in DELAY_FAULTS:
        if not 0 <= number <= MAX_DELAY_MS:
            raise FaultSpecError(f"{where}{name}: milliseconds must be between 0 and {int(MAX_DELAY_MS)}, got {value}")
    elif not 0 <= number <= 1:
        raise FaultSpecError(f"{where}{name}: probability must be between 0 and 1, got {value}")
    return number


def faults_from_mapping(values: Mapping[str, Any], *, base: Faults = NO_FAULTS, where: str = "") -> Faults:
    """Faults from ``{"latency": 50, "hang": 0.1}`` (unknown names and out-of-range values are refused)."""
    changes: dict[str, float] = {}
    for name, value in values.items():
        if name not in FAULT_NAMES:
            raise FaultSpecError(f"{where}unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        changes[name] = _checked(name, value, where)
    return msgspec.structs.replace(base, **changes)


def parse_fault_list(text: str, *, base: Faults = NO_FAULTS, where: str = "") -> Faults:
    """``latency=50,hang=0.1`` → `Faults` (on top of ``base``)."""
    values: dict[str, float] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        name, sep, raw_value = item.partition("=")
        name = name.strip()
        if name not in FAULT_NAMES:
            raise FaultSpecError(f"{where}unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
        if not sep:
            if name in DELAY_FAULTS:
                raise FaultSpecError(f"{where}{name} needs a value in milliseconds, e.g. {name}=100")
            values[name] = 1.0
            continue
        try:
            number = float(raw_value.strip())
        except ValueError:
            raise FaultSpecError(f"{where}{name}: {raw_value.strip()!r} is not a number") from None
        values[name] = _checked(name, number, where)
    return msgspec.structs.replace(base, **values)


def parse_fault_spec(spec: str, departments: Iterable[str] = DEPARTMENT_CODES) -> dict[str, Faults]:
    """The faults of every department named in ``departments`` (those with none map to `NO_FAULTS`)."""
    codes = list(departments)
    result = dict.fromkeys(codes, NO_FAULTS)
    for index, raw in enumerate(spec.split(";"), start=1):
        entry = raw.strip()
        if not entry:
            continue
        department, sep, faults = entry.partition(":")
        department = department.strip()
        if not sep:
            raise FaultSpecError(f"entry {index} ({entry!r}): expected dept:fault[=value][,fault…]")
        if department != "*" and department not in result:
            raise FaultSpecError(f"entry {index}: unknown department {department!r}; known: *, {', '.join(codes)}")
        targets = codes if department == "*" else [department]
        where = f"entry {index} ({department}): "
        parse_fault_list(faults, where=where)  # validate once, even when no department matches
        for code in targets:
            result[code] = parse_fault_list(faults, base=result[code], where=where)
    return result
