"""Department records -> unified `Certificate`s, as the department file's ``[mapping]`` says.

The mapping is compiled once per department (paths split, transforms looked up) because it runs for every record
of a bulk sync. Values are validated by converting into the `Certificate` Struct, so a department that sends a
date that is not a date or a holder code type we do not know is a `MappingError` naming both the unified field and
the department's own field name.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import msgspec

from connectors.formats import Record, json_get, split_path
from connectors.model import Certificate, Signature
from connectors.spec import MAPPED_FIELDS, DepartmentSpec, FieldMapping, Transform

_CERTIFICATE_FIELDS = (
    "identifier",
    "number",
    "type_code",
    "name",
    "holder_name",
    "holder_code",
    "holder_code_type",
    "issuer_name",
    "issuer_code",
    "issue_date",
    "valid_from",
    "valid_until",
    "status",
    "division_code",
)


_MISSING = re.compile(r"missing required field `(\w+)`")


class MappingError(ValueError):
    """A record does not fit the mapping; the message names the field (never its value: it may be personal)."""


class MappedRecord(msgspec.Struct, frozen=True, kw_only=True):
    certificate: Certificate
    updated_at: dt.datetime | None = None


def _empty_as_none(value: Any, tz: dt.timezone) -> Any:
    return None if value == "" else value


def _strip(value: Any, tz: dt.timezone) -> Any:
    return value.strip() if isinstance(value, str) else value


def _compact_date(value: Any, tz: dt.timezone) -> Any:
    if not isinstance(value, str) or value == "":
        return value or None
    if len(value) != 8 or not value.isdigit():
        raise ValueError("expected yyyyMMdd")
    return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def _compact_datetime(value: Any, tz: dt.timezone) -> Any:
    if not isinstance(value, str) or value == "":
        return value or None
    if len(value) != 14 or not value.isdigit():
        raise ValueError("expected yyyyMMddHHmmss")
    return dt.datetime(
        int(value[:4]),
        int(value[4:6]),
        int(value[6:8]),
        int(value[8:10]),
        int(value[10:12]),
        int(value[12:14]),
        tzinfo=tz,
    )


_TRANSFORMS: dict[Transform, Callable[[Any, dt.timezone], Any]] = {
    "empty_as_none": _empty_as_none,
    "strip": _strip,
    "compact_date": _compact_date,
    "compact_datetime": _compact_datetime,
}

Getter = Callable[[Record], Any]


def _getter(path: str) -> Getter | None:
    parts = split_path(path)
    if not parts:
        return None
    if len(parts) == 1:
        key = parts[0]
        return lambda record: record.get(key)
    return lambda record: json_get(record, parts)


class RecordMapper:
    """The compiled ``[mapping]`` of one department."""

    def __init__(self, spec: DepartmentSpec) -> None:
        mapping: FieldMapping | None = spec.mapping
        if mapping is None:
            raise ValueError(f"department {spec.code} has no [mapping]")
        self.department = spec.code
        self._tz = mapping.tzinfo()
        self._type_keys = spec.type_keys_by_code
        self._source_names = {name: getattr(mapping, name) for name in MAPPED_FIELDS}
        self._fields: list[tuple[str, Getter, tuple[Callable[[Any, dt.timezone], Any], ...]]] = []
        for name in _CERTIFICATE_FIELDS:
            getter = _getter(getattr(mapping, name))
            if getter is not None:
                self._fields.append((name, getter, tuple(_TRANSFORMS[t] for t in mapping.transforms.get(name, ()))))
        self._attributes = _getter(mapping.attributes)
        self._attribute_fields = [
            (name, getter) for name, path in mapping.attribute_fields.items() if (getter := _getter(path)) is not None
        ]
        self._sig = (
            _getter(mapping.signature_alg),
            _getter(mapping.signature_key_id),
            _getter(mapping.signature_value),
        )
        self._sig_transforms = {
            name: tuple(_TRANSFORMS[t] for t in mapping.transforms.get(name, ()))
            for name in ("signature_alg", "signature_key_id", "signature_value")
        }
        self._updated_at = _getter(mapping.updated_at)
        self._updated_at_transforms = tuple(_TRANSFORMS[t] for t in mapping.transforms.get("updated_at", ()))

    def _where(self, field: str) -> str:
        source = self._source_names.get(field) or ""
        return f"{field} ({source})" if source else field

    def map(self, record: Record) -> MappedRecord:
        values: dict[str, Any] = {}
        tz = self._tz
        for name, getter, transforms in self._fields:
            value = getter(record)
            try:
                for transform in transforms:
                    value = transform(value, tz)
            except ValueError as exc:
                raise MappingError(f"{self._where(name)}: {exc}") from None
            if value is not None:
                values[name] = value
        values["type_key"] = self._type_keys.get(values.get("type_code", ""), "")
        if self._attributes is not None:
            attributes = self._attributes(record)
            if attributes is not None:
                values["attributes"] = attributes
        if self._attribute_fields:
            extra = values.setdefault("attributes", {})
            for name, getter in self._attribute_fields:
                value = getter(record)
                if value not in (None, ""):
                    extra[name] = value
        signature = self._signature(record)
        try:
            certificate = msgspec.convert(values, Certificate)
        except msgspec.ValidationError as exc:
            text = str(exc)
            message, sep, where = text.rpartition(" - at `$.")
            if sep:
                field = where.rstrip("`").split(".")[0].split("[")[0]
                raise MappingError(f"{self._where(field)}: {message}") from None
            missing = _MISSING.search(text)
            if missing:
                raise MappingError(f"{self._where(missing[1])}: missing or null") from None
            raise MappingError(text) from None
        if signature is not None:
            certificate = msgspec.structs.replace(certificate, signature=signature)
        return MappedRecord(certificate=certificate, updated_at=self._updated(record))

    def _signature(self, record: Record) -> Signature | None:
        parts: list[Any] = []
        for name, getter in zip(("signature_alg", "signature_key_id", "signature_value"), self._sig, strict=True):
            value = getter(record) if getter else None
            for transform in self._sig_transforms[name]:
                value = transform(value, self._tz)
            parts.append(value)
        if not all(parts):
            return None  # unsigned: verification says so, the record is still a certificate
        try:
            return msgspec.convert({"alg": parts[0], "key_id": parts[1], "value": parts[2]}, Signature)
        except msgspec.ValidationError as exc:
            raise MappingError(f"{self._where('signature_alg')}: {exc}") from None

    def _updated(self, record: Record) -> dt.datetime | None:
        if self._updated_at is None:
            return None
        value = self._updated_at(record)
        try:
            for transform in self._updated_at_transforms:
                value = transform(value, self._tz)
            if value is None or value == "":
                return None
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise MappingError(f"{self._where('updated_at')}: {exc}") from None
        if not isinstance(value, dt.datetime):
            raise MappingError(f"{self._where('updated_at')}: expected a datetime")
        return value if value.tzinfo is not None else value.replace(tzinfo=self._tz)


def format_since(since: dt.datetime, fmt: str, tz: dt.timezone) -> str:
    """The updated-since parameter value: ISO 8601 with offset, or a strftime pattern in local time."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=tz)
    if fmt == "iso":
        return since.isoformat()
    return since.astimezone(tz).strftime(fmt)
