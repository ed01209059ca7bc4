"""Department records -> unified `Certificate`s, as the department file's ``[mapping]`` says.

The mapping is compiled once per department (paths split, transforms looked up) because it runs for every record
of a bulk sync. Values are validated by converting into the `Certificate` Struct, so a department that sends a
date that is not a date or a holder code type we do not know is a `MappingError` naming both the unified field and
the department's own field name.

For JSON departments the mapping also yields a typed record, `RecordMapper.row_type`: a Struct generated from the
department file whose attributes are renamed to the department's field names (nested objects for dotted paths)
and typed as the unified fields are, so msgspec decodes and validates a page in one pass (dates included) and
`RecordMapper.map_row` builds each `Certificate` with one constructor call. It is strict: whatever it does not
accept (a null where the general path would apply a default is accepted; anything odd is not) raises, and the
caller maps the page again through `RecordMapper.map`, whose errors are the ones reported.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from typing import Any, get_args, get_origin

import msgspec

from connectors.formats import Record, Tree, attribute_path, json_get, leaf, split_path, tree_insert, tree_struct
from connectors.model import Certificate, Signature, SignatureAlgorithm
from connectors.rules import DATE_FIELDS, CodeRule, DateRule, RuleError, compile_rule, rule_name, value_kind
from connectors.spec import CERTIFICATE_FIELDS, MAPPED_FIELDS, DepartmentSpec, FieldMapping

_MISSING = re.compile(r"missing required field `(\w+)`")
_LONG_NUMBER = re.compile(r"\d{8,}[\dXx]?")
_IDENTIFIER = re.compile(r"1\.2\.156\.[0-9A-Z.]+")


class MappingError(ValueError):
    """A record does not fit the mapping; the message names the field (never its value: it may be personal).

    ``field`` is the unified field, ``source`` the department's name for it, ``value_kind`` what kind of value came
    (`connectors.rules.value_kind`) and ``rule`` the rule or type it failed.
    """

    def __init__(
        self, message: str, *, field: str = "", source: str = "", value_kind: str = "", rule: str = ""
    ) -> None:
        super().__init__(message)
        self.field = field
        self.source = source
        self.value_kind = value_kind
        self.rule = rule


class QuarantinedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A record that could not be decoded or mapped: why, and where it was, never what it said."""

    department: str
    #: The record's place in its page (0-based) and the page's number in the run (1-based; 0 = a lookup).
    position: int
    page: int = 0
    #: The certificate identifier as sent, when it could be read (long digit runs masked).
    identifier: str = ""
    field: str
    source: str = ""
    value_kind: str
    rule: str
    message: str
    request_id: str = ""


class FastPathRefused(ValueError):
    """A typed record the fast path will not judge; the general path (`RecordMapper.map`) maps it instead."""


_SIGNATURE_ALGORITHMS = frozenset(get_args(SignatureAlgorithm))
_CERTIFICATE_INFO = {f.name: f for f in msgspec.structs.fields(Certificate)}


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


Step = Callable[[Any, dt.timezone], Any]

_TRANSFORMS: dict[str, Step] = {
    "empty_as_none": _empty_as_none,
    "strip": _strip,
    "compact_date": _compact_date,
    "compact_datetime": _compact_datetime,
}

Getter = Callable[[Record], Any]


def field_steps(spec: DepartmentSpec, name: str) -> tuple[Step, ...]:
    """What runs on a raw value of the unified field ``name``: its transforms, then its value rule."""
    mapping = spec.mapping
    if mapping is None:
        return ()
    steps = [_TRANSFORMS[t] for t in mapping.transforms.get(name, ())]
    rule = mapping.rules.get(name)
    if rule is not None:
        info = _CERTIFICATE_INFO.get(name)
        required = info is not None and info.required
        steps.append(compile_rule(name, rule, required=required, types=spec.types))
    return tuple(steps)


def _type_label(field: str) -> str:
    """The unified field's type in a word (``date``, ``text``, ``code`` for a closed set of values)."""
    info = _CERTIFICATE_INFO.get(field)
    if info is None:
        return "unknown"
    if get_origin(info.type) is dict:
        return "object"
    types = set(get_args(info.type)) - {type(None)} or {info.type}
    if dt.date in types:
        return "date"
    if str in types:
        return "text"
    if any(get_args(t) for t in types) or get_args(info.type):
        return "code"
    return "object"


def _mask(text: str) -> str:
    """Long digit runs (an ID number, a phone number) masked; a GB/T 36904 identifier names no one and stays."""
    if _IDENTIFIER.fullmatch(text):
        return text
    return _LONG_NUMBER.sub("…", text)


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
        self._rule_names = {name: rule_name(rule) for name, rule in mapping.rules.items()}
        steps = {name: field_steps(spec, name) for name in MAPPED_FIELDS}
        self._identifier = _getter(mapping.identifier)
        self._fields: list[tuple[str, Getter, tuple[Step, ...]]] = []
        for name in CERTIFICATE_FIELDS:
            getter = _getter(getattr(mapping, name))
            if getter is not None:
                self._fields.append((name, getter, steps[name]))
        self._attributes = _getter(mapping.attributes)
        self._attribute_fields = [
            (name, getter) for name, path in mapping.attribute_fields.items() if (getter := _getter(path)) is not None
        ]
        self._sig = (
            _getter(mapping.signature_alg),
            _getter(mapping.signature_key_id),
            _getter(mapping.signature_value),
        )
        self._sig_transforms = {name: steps[name] for name in ("signature_alg", "signature_key_id", "signature_value")}
        self._updated_at = _getter(mapping.updated_at)
        self._updated_at_transforms = steps["updated_at"]
        #: The department's record as a typed Struct (see the module docstring); None when the mapping needs the
        #: general path (attribute fields, a path used twice, a required field the department does not send).
        self.row_type: type[msgspec.Struct] | None = None
        self._row: _RowPlan | None = None
        if not mapping.attribute_fields:
            self._row = _plan_row(spec.code, mapping, steps)
            self.row_type = self._row.struct if self._row is not None else None

    def _where(self, field: str) -> str:
        source = self._source_names.get(field) or ""
        return f"{field} ({source})" if source else field

    def _error(self, field: str, message: str, value: Any, rule: str = "") -> MappingError:
        return MappingError(
            f"{self._where(field)}: {message}",
            field=field,
            source=self._source_names.get(field) or "",
            value_kind=value_kind(value),
            rule=rule or self._rule_names.get(field, ""),
        )

    def _step_error(self, field: str, exc: ValueError, value: Any) -> MappingError:
        if isinstance(exc, RuleError):
            error = self._error(field, str(exc), value, exc.rule)
            error.value_kind = exc.value_kind
            return error
        return self._error(field, str(exc), value, "transforms")

    def quarantine(
        self, record: Any, error: MappingError, *, position: int, page: int = 0, request_id: str = ""
    ) -> QuarantinedRecord:
        """The rejection of one record: the error's field, value kind and rule, and the identifier if readable."""
        identifier = ""
        if isinstance(record, dict) and self._identifier is not None:
            value = self._identifier(record)
            if isinstance(value, str):
                identifier = _mask(value.strip())[:128]
        return QuarantinedRecord(
            department=self.department,
            position=position,
            page=page,
            identifier=identifier,
            field=error.field or "(record)",
            source=error.source,
            value_kind=error.value_kind or "unknown",
            rule=error.rule or "mapping",
            message=_mask(str(error))[:300],
            request_id=request_id,
        )

    def map(self, record: Record) -> MappedRecord:
        if not isinstance(record, dict):
            raise MappingError(
                "a record must be an object",
                field="(record)",
                value_kind=value_kind(record),
                rule="record",
            )
        values: dict[str, Any] = {}
        tz = self._tz
        for name, getter, transforms in self._fields:
            value = raw = getter(record)
            try:
                for transform in transforms:
                    value = transform(value, tz)
            except ValueError as exc:
                raise self._step_error(name, exc, raw) from None
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
                rule = self._rule_names.get(field) or f"type {_type_label(field)}"
                raise self._error(field, message, values.get(field), rule) from None
            missing = _MISSING.search(text)
            if missing:
                raise self._error(missing[1], "missing or null", None, "required") from None
            raise MappingError(text, field="(record)", value_kind="object", rule="type") from None
        if signature is not None:
            certificate = msgspec.structs.replace(certificate, signature=signature)
        return MappedRecord(certificate=certificate, updated_at=self._updated(record))

    def map_row(self, row: Any) -> MappedRecord:
        """A record of `row_type` -> `MappedRecord`; raises `FastPathRefused` (or `MappingError`) when the record
        must go through `map` (which then reports what is wrong)."""
        plan = self._row
        if plan is None:
            raise FastPathRefused("no typed record for this department")
        values = dict(zip(plan.top_names, plan.top(row), strict=True))
        for name, get in plan.direct:
            values[name] = get(row)
        for name, get in plan.defaulted:
            value = get(row)
            if value is not None:
                values[name] = value
        tz = self._tz
        for name, get, transforms, type_ in plan.transformed:
            value = get(row)
            try:
                for transform in transforms:
                    value = transform(value, tz)
            except ValueError:
                raise FastPathRefused(name) from None
            if value is not None:
                # a ValidationError sends the page the general way; a rule whose output is already of the field's
                # type (a date, one of our codes, text for a text field) needs no check
                values[name] = value if type_ is None else msgspec.convert(value, type_)
            elif name in plan.required:
                raise FastPathRefused(name)
        values["type_key"] = self._type_keys.get(values["type_code"], "")
        signature = self._signature_of(list(plan.signature(row)))
        if signature is not None:
            values["signature"] = signature
        updated = self._updated_of(plan.updated_at(row)) if plan.updated_at is not None else None
        return MappedRecord(certificate=Certificate(**values), updated_at=updated)

    def _signature(self, record: Record) -> Signature | None:
        return self._signature_of([getter(record) if getter else None for getter in self._sig])

    def _signature_of(self, raw: list[Any]) -> Signature | None:
        parts: list[Any] = []
        for name, value in zip(("signature_alg", "signature_key_id", "signature_value"), raw, strict=True):
            original = value
            try:
                for transform in self._sig_transforms[name]:
                    value = transform(value, self._tz)
            except ValueError as exc:
                raise self._step_error(name, exc, original) from None
            parts.append(value)
        if not all(parts):
            return None  # unsigned: verification says so, the record is still a certificate
        alg, key_id, value = parts
        if type(alg) is str and alg in _SIGNATURE_ALGORITHMS and type(key_id) is str and type(value) is str:
            # the common case, checked here without a conversion (all three are non-empty strings)
            return Signature(alg=alg, key_id=key_id, value=value)  # type: ignore[arg-type]
        try:
            return msgspec.convert({"alg": alg, "key_id": key_id, "value": value}, Signature)
        except msgspec.ValidationError as exc:
            raise self._error("signature_alg", str(exc), alg, "type signature") from None

    def _updated(self, record: Record) -> dt.datetime | None:
        if self._updated_at is None:
            return None
        return self._updated_of(self._updated_at(record))

    def _updated_of(self, value: Any) -> dt.datetime | None:
        raw = value
        try:
            for transform in self._updated_at_transforms:
                value = transform(value, self._tz)
            if value is None or value == "":
                return None
            if isinstance(value, str):
                value = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise self._step_error("updated_at", exc, raw) from None
        if not isinstance(value, dt.datetime):
            raise self._error("updated_at", "expected a datetime", raw, "type datetime")
        return value if value.tzinfo is not None else value.replace(tzinfo=self._tz)


RowGetter = Callable[[Any], Any]


class _RowPlan:
    """How a department's typed record becomes a `Certificate`: which attribute feeds which field, and how."""

    def __init__(self, struct: type[msgspec.Struct]) -> None:
        self.struct = struct
        #: Passed as decoded (required, or None is the field's default): top-level ones read in one call, the
        #: others (nested objects) one by one.
        self.top_names: tuple[str, ...] = ()
        self.top: Callable[[Any], tuple[Any, ...]] = lambda row: ()
        self.direct: list[tuple[str, RowGetter]] = []
        #: Passed unless None (the field's default then applies).
        self.defaulted: list[tuple[str, RowGetter]] = []
        #: Decoded as they come, transformed, then validated with msgspec.convert.
        self.transformed: list[tuple[str, RowGetter, tuple[Step, ...], Any]] = []
        self.required: set[str] = set()
        #: The three raw signature parts (algorithm, key id, value).
        self.signature: Callable[[Any], tuple[Any, Any, Any]] = lambda row: (None, None, None)
        self.updated_at: RowGetter | None = None


def _row_getter(attrs: tuple[str, ...]) -> RowGetter:
    if len(attrs) == 1:
        return operator.attrgetter(attrs[0])
    return lambda row: attribute_path(row, attrs)


_SIGNATURE_PARTS = ("signature_alg", "signature_key_id", "signature_value")


def _tuple_getter(attrs: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    get = operator.attrgetter(*attrs)
    return (lambda row: (get(row),)) if len(attrs) == 1 else get


def _signature_getter(where: list[tuple[str, ...] | None]) -> Callable[[Any], tuple[Any, Any, Any]]:
    """The raw signature parts of a typed record; one object read when all three sit in the same nested object."""
    if all(w is not None for w in where):
        parents = {w[:-1] for w in where if w is not None}
        if len(parents) == 1:
            (parent,) = parents
            leaves = operator.attrgetter(*(w[-1] for w in where if w is not None))
            if not parent:
                return leaves
            get_parent = _row_getter(parent)

            def nested(row: Any) -> tuple[Any, Any, Any]:
                obj = get_parent(row)
                return (None, None, None) if obj is None else leaves(obj)

            return nested
    getters = [_row_getter(w) if w is not None else None for w in where]

    def parts(row: Any) -> tuple[Any, Any, Any]:
        a, b, c = (get(row) if get is not None else None for get in getters)
        return a, b, c

    return parts


def _rule_output_trusted(name: str, mapping: FieldMapping, type_: Any) -> bool:
    """Whether the field's last step is a value rule that only ever yields values of the field's type (or None):
    a date rule on a date field, a code table into a closed set of our codes (checked when the file loaded), or
    any rule on a plain text field."""
    rule = mapping.rules.get(name)
    if rule is None:
        return False
    if isinstance(rule, DateRule):
        return DATE_FIELDS.get(name) == "date"
    if isinstance(rule, CodeRule) and name in ("status", "holder_code_type"):
        return True
    return type_ is str


def _plan_row(code: str, mapping: FieldMapping, steps: dict[str, tuple[Step, ...]]) -> _RowPlan | None:
    """The typed record of a department's mapping, or None when only the general path can map it."""
    tree: Tree = {}
    paths: dict[str, tuple[str, ...]] = {}  # unified name -> the department's key path
    kinds: dict[str, str] = {}
    for name in (*CERTIFICATE_FIELDS, "attributes"):
        parts = split_path(getattr(mapping, name))
        info = _CERTIFICATE_INFO[name]
        if not parts:
            if info.required:
                return None  # every record would fail: the general path says so
            continue
        if steps.get(name):
            kind, node = "transformed", leaf(Any, None)
        elif info.required:
            kind, node = "direct", leaf(info.type)
        elif info.default is None:
            kind, node = "direct", leaf(info.type, None)
        else:
            kind, node = "defaulted", leaf(info.type | None, None)
        if not tree_insert(tree, parts, node):
            return None
        paths[name], kinds[name] = parts, kind
    for name in ("signature_alg", "signature_key_id", "signature_value", "updated_at"):
        parts = split_path(getattr(mapping, name))
        if not parts:
            continue
        node = leaf(Any, None) if steps.get(name) else leaf(str | None, None)
        if not tree_insert(tree, parts, node):
            return None
        paths[name] = parts
    struct, attrs = tree_struct(f"{code.title().replace('_', '')}Record", tree)
    plan = _RowPlan(struct)
    top: list[tuple[str, str]] = []
    for name, kind in kinds.items():
        where = attrs[".".join(paths[name])]
        get = _row_getter(where)
        if kind == "direct" and len(where) == 1:
            top.append((name, where[0]))
        elif kind == "direct":
            plan.direct.append((name, get))
        elif kind == "defaulted":
            plan.defaulted.append((name, get))
        else:
            info = _CERTIFICATE_INFO[name]
            trusted = _rule_output_trusted(name, mapping, info.type)
            plan.transformed.append((name, get, steps[name], None if trusted else info.type))
            if info.required:
                plan.required.add(name)
    if top:
        names, top_attrs = zip(*top, strict=True)
        plan.top_names = names
        plan.top = _tuple_getter(top_attrs)
    plan.signature = _signature_getter(
        [attrs[".".join(paths[name])] if name in paths else None for name in _SIGNATURE_PARTS]
    )
    if "updated_at" in paths:
        plan.updated_at = _row_getter(attrs[".".join(paths["updated_at"])])
    return plan


def format_since(since: dt.datetime, fmt: str, tz: dt.timezone) -> str:
    """The updated-since parameter value: ISO 8601 with offset, or a strftime pattern in local time."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=tz)
    if fmt == "iso":
        return since.isoformat()
    return since.astimezone(tz).strftime(fmt)
