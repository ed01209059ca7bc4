"""Response bodies -> records: JSON (msgspec) and XML (defusedxml, no DTDs or entities).

Both formats end up as a `Document`: a list of records, each a mapping of the department's field names to values
(nested objects for JSON, flat element texts for XML), and a way to read paging fields such as a next cursor.
Parsing failures raise `FormatError`; the client turns it into `MalformedResponse` with the request's context.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # only the Element type and ParseError; parsing goes through defusedxml
from collections.abc import Mapping, Sequence
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

    __slots__ = ("_json", "_xml", "records", "request_id")

    def __init__(self, records: Sequence[Record], *, json: Any = None, xml: ET.Element | None = None) -> None:
        self.records = records
        self._json = json
        self._xml = xml
        #: The ``X-Request-Id`` of the response this document came from (for error context).
        self.request_id = ""

    def value(self, path: str) -> Any:
        """A top-level value (paging fields, result codes); None when absent."""
        if not path:
            return None
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
    for index, record in enumerate(items):
        if not isinstance(record, dict):
            raise FormatError(f"{fmt.items}[{index}]: expected an object")
    _check_result(Document(items, json=doc), fmt.result_code, fmt.result_ok)
    return Document(items, json=doc)


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
    _check_result(document, fmt.result_code, fmt.result_ok)
    return document


def _check_result(document: Document, path: str, ok: str) -> None:
    if not path:
        return
    code = document.value(path)
    if code is None:
        raise FormatError(f"{path}: result code missing")
    if str(code) != ok:
        raise FormatError(f"{path}: result code {code!s:.40} is not {ok}")


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
