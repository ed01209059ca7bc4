"""Response bodies -> records: JSON (msgspec) and XML (defusedxml, no DTDs or entities).

Both formats end up as a `Document`: a list of records, each a mapping of the department's field names to values
(nested objects for JSON, flat element texts for XML), and a way to read paging fields such as a next cursor.
Parsing failures raise `FormatError`; the client turns it into `MalformedResponse` with the request's context.

`TypedJsonPages` is the bulk-sync fast path for JSON: the body is decoded straight into the department's record
Struct (generated from its mapping, `connectors.mapping.RecordMapper.row_type`) inside a generated envelope that
keeps only the paging and result-code fields. It accepts a subset of what `parse_json` accepts and raises on
anything else, so the caller can fall back to `parse_json`, whose errors are the ones reported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only the Element type and ParseError; parsing goes through defusedxml
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import defusedxml.ElementTree as SafeET
import msgspec
from defusedxml import DefusedXmlException

from connectors.spec import Format, JsonFormat, XmlFormat

Record = Mapping[str, Any]

_JSON = msgspec.json.Decoder()


class FormatError(ValueError):
    """The body is not a document of the declared format (the message says where)."""


def split_path(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split(".") if part)


def json_get(obj: Any, parts: tuple[str, ...]) -> Any:
    """Value at a dotted path, or None when any step is missing."""
    for part in parts:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
        if obj is None:
            return None
    return obj


class Document:
    """A parsed response body."""

    __slots__ = ("_json", "_values", "_xml", "mapped", "quarantined", "records", "refused", "request_id")

    def __init__(
        self,
        records: Sequence[Any],
        *,
        json: Any = None,
        xml: ET.Element | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        #: The department's records: mappings of its field names (`parse`), or its typed record Structs
        #: (`TypedJsonPages`).
        self.records = records
        self._json = json
        self._xml = xml
        self._values = values
        #: The ``X-Request-Id`` of the response this document came from (for error context).
        self.request_id = ""
        #: The records mapped onto the unified model, once the client has mapped them.
        self.mapped: list[Any] | None = None
        #: The records that could not be mapped (`connectors.mapping.QuarantinedRecord`), once mapped.
        self.quarantined: list[Any] = []
        #: Set (to the `connectors.errors.RejectedResponse`) when the department refused this page's records.
        self.refused: Exception | None = None

    def value(self, path: str) -> Any:
        """A top-level value (paging fields, result codes); None when absent."""
        if not path:
            return None
        if self._values is not None:  # a typed document kept exactly the paths it was built for
            return self._values.get(path)
        if self._xml is not None:
            text = self._xml.findtext(path.replace(".", "/"))
            return None if text is None else text.strip()
        return json_get(self._json, split_path(path))


def parse_json(body: bytes, fmt: JsonFormat) -> Document:
    try:
        doc = _JSON.decode(body)
    except msgspec.DecodeError as exc:
        raise FormatError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise FormatError("body is not a JSON object")
    items = json_get(doc, split_path(fmt.items))
    if items is None:
        items = []  # some systems drop the array when it is empty; paging stops on an empty page anyway
    if not isinstance(items, list):
        raise FormatError(f"{fmt.items}: expected an array of records")
    # A record that is not an object stays in the list: the mapping rejects it alone, not the page.
    document = Document(items, json=doc)
    _check_result(document, fmt.result_code)
    return document


def parse_xml(body: bytes, fmt: XmlFormat) -> Document:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise FormatError(f"XML with DTD or entities is refused: {type(exc).__name__}") from exc
    except ET.ParseError as exc:
        raise FormatError(f"body is not well-formed XML: {exc}") from exc
    records: list[dict[str, str]] = []
    for element in root.findall(fmt.records):
        # Legacy systems send every field as a child element with text; empty elements mean "".
        records.append({child.tag: (child.text or "").strip() for child in element})
    document = Document(records, xml=root)
    _check_result(document, fmt.result_code)
    return document


def _check_result(document: Document, path: str) -> None:
    """A declared result code must be there; what it says is the client's to judge (`result_code`)."""
    if path and document.value(path) is None:
        raise FormatError(f"{path}: result code missing")


def result_code(document: Document, fmt: Format) -> tuple[str, str] | None:
    """The result code and message of a document whose code is not ``result_ok``; None when it is (or when the
    format declares no result code)."""
    if not fmt.result_code:
        return None
    code = document.value(fmt.result_code)
    text = "" if code is None else str(code)
    if text == fmt.result_ok:
        return None
    message = document.value(fmt.result_message) if fmt.result_message else None
    return text, "" if message is None else str(message)


class _Leaf:
    __slots__ = ("default", "type")

    def __init__(self, type_: Any, default: Any) -> None:
        self.type = type_
        self.default = default


#: A tree of JSON object keys: a `_Leaf` (the field's type and default) or a subtree (a nested object).
Tree = dict[str, "_Leaf | Tree"]


def tree_insert(tree: Tree, parts: tuple[str, ...], leaf: _Leaf) -> bool:
    """Put ``leaf`` at ``parts``; False when the path collides with another (a key both a leaf and an object)."""
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return False
        node = child
    if not parts or parts[-1] in node:
        return False
    node[parts[-1]] = leaf
    return True


def leaf(type_: Any, default: Any = msgspec.NODEFAULT) -> _Leaf:
    return _Leaf(type_, default)


def tree_struct(name: str, tree: Tree) -> tuple[type[msgspec.Struct], dict[str, tuple[str, ...]]]:
    """A Struct type decoding the objects ``tree`` describes, and the attribute path of every key path in it.

    Attribute names are generated (``f0``, ``f1``, …) and renamed to the department's keys, which need not be
    Python identifiers. A nested object is required when any field inside it is, else optional (None).
    """
    fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    paths: dict[str, tuple[str, ...]] = {}
    for index, (key, node) in enumerate(tree.items()):
        attr = f"f{index}"
        rename[attr] = key
        if isinstance(node, _Leaf):
            fields.append((attr, node.type, node.default))
            paths[key] = (attr,)
            continue
        nested, nested_paths = tree_struct(f"{name}_{attr}", node)
        if any(f.required for f in msgspec.structs.fields(nested)):
            fields.append((attr, nested, msgspec.NODEFAULT))
        else:
            fields.append((attr, nested | None, None))
        for sub, attrs in nested_paths.items():
            paths[f"{key}.{sub}"] = (attr, *attrs)
    fields.sort(key=lambda f: f[2] is not msgspec.NODEFAULT)  # required fields first
    struct = msgspec.defstruct(name, fields, rename=rename)
    return struct, paths


def attribute_path(obj: Any, attrs: tuple[str, ...]) -> Any:
    """``obj.a.b…``, None when a step is None (an absent optional object)."""
    for attr in attrs:
        if obj is None:
            return None
        obj = getattr(obj, attr)
    return obj


class TypedJsonPages:
    """Decode a JSON format's bodies straight into ``record_type`` (see the module docstring).

    ``paths`` are the top-level values `Document.value` must answer (paging fields); the result code is added.
    Raises ``ValueError`` at construction when the paths cannot share one envelope.
    """

    def __init__(self, fmt: JsonFormat, record_type: Any, paths: Iterable[str] = ()) -> None:
        self.format = fmt
        tree: Tree = {}
        items = split_path(fmt.items)
        if not tree_insert(tree, items, leaf(list[record_type] | None, None)):
            raise ValueError(f"items path {fmt.items!r} cannot be decoded as typed records")
        wanted = {p for p in (*paths, fmt.result_code, fmt.result_message) if p}
        for path in wanted:
            if not tree_insert(tree, split_path(path), leaf(Any, None)):
                raise ValueError(f"path {path!r} collides with another path of the envelope")
        envelope, attrs = tree_struct("Envelope", tree)
        self._decoder = msgspec.json.Decoder(envelope)
        self._items = attrs[".".join(items)]
        self._values = [(path, attrs[".".join(split_path(path))]) for path in wanted]

    def decode(self, body: bytes) -> Document:
        """The document, its records typed; raises (``msgspec.DecodeError``, `FormatError`) where ``parse`` might
        answer differently, so the caller falls back to it."""
        envelope = self._decoder.decode(body)
        records = attribute_path(envelope, self._items)
        values = {path: attribute_path(envelope, attrs) for path, attrs in self._values}
        document = Document([] if records is None else records, values=values)
        _check_result(document, self.format.result_code)
        return document


def parse(body: bytes, fmt: Format) -> Document:
    if isinstance(fmt, JsonFormat):
        return parse_json(body, fmt)
    return parse_xml(body, fmt)


def xml_error_message(body: bytes) -> str:
    """The ``<Message>`` of a legacy XML error document, if the body is one (for error texts)."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ET.ParseError):
        return ""
    return (root.findtext("Message") or "").strip()
