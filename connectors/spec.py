"""A department connector as data: ``config/departments/<code>.toml`` decodes into a `DepartmentSpec`.

Things that come in kinds are tagged unions on ``kind`` (auth, paging, format), so a file says
``[auth] kind = "hmac"`` and gets exactly the fields that style needs; unknown keys are errors. Adding a department
whose system follows a known style is a new file and nothing else; a system that fits no style names a class
(``[custom] class = "module:Class"``) implementing `connectors.client.DepartmentClient`.

Secrets are written inline as demo values and overridden by the environment variable named in the matching
``*_env`` field, so a deployment never edits the file to put a real secret in it. File paths (mutual TLS) are
relative to the gateway's data dir.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import msgspec.toml

from connectors.rules import RULE_KINDS, ValueRule, rule_problems

# --- auth -------------------------------------------------------------------------------------------------


class _Kind(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """Base of the tagged config unions."""


def _secret(inline: str, env_name: str, environ: MappingABC[str, str] | None) -> str:
    env = os.environ if environ is None else environ
    if env_name and env.get(env_name):
        return env[env_name]
    return inline


class ApiKeyAuth(_Kind, frozen=True, tag="api_key"):
    """A static key in a request header."""

    header: str
    key: str = ""
    key_env: str = ""

    def resolved_key(self, environ: MappingABC[str, str] | None = None) -> str:
        return _secret(self.key, self.key_env, environ)


class HmacAuth(_Kind, frozen=True, tag="hmac"):
    """HMAC-SHA256 request signing over method, path, sorted query, timestamp, nonce and body hash."""

    key_id: str
    secret: str = ""
    secret_env: str = ""
    key_id_header: str = "X-Ca-Key"
    timestamp_header: str = "X-Ca-Timestamp"
    nonce_header: str = "X-Ca-Nonce"
    signature_header: str = "X-Ca-Signature"

    def resolved_secret(self, environ: MappingABC[str, str] | None = None) -> str:
        return _secret(self.secret, self.secret_env, environ)


class OAuth2ClientCredentials(_Kind, frozen=True, tag="oauth2_client_credentials"):
    """OAuth 2.0 client credentials grant; the token is cached and refreshed before it expires."""

    token_path: str  # relative to base_url, or an absolute URL
    client_id: str
    client_secret: str = ""
    client_secret_env: str = ""
    scope: str = ""
    #: HTTP Basic (RFC 6749 §2.3.1, the default) or client_id/client_secret in the form body.
    client_auth: Literal["basic", "body"] = "basic"
    #: Refresh when this fraction of ``expires_in`` has passed.
    refresh_at: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8

    def resolved_secret(self, environ: MappingABC[str, str] | None = None) -> str:
        return _secret(self.client_secret, self.client_secret_env, environ)


class MutualTlsAuth(_Kind, frozen=True, tag="mutual_tls"):
    """Client certificate authentication; paths are relative to the data dir."""

    ca_file: str
    cert_file: str
    key_file: str


class NoAuth(_Kind, frozen=True, tag="none"):
    pass


Auth = ApiKeyAuth | HmacAuth | OAuth2ClientCredentials | MutualTlsAuth | NoAuth


# --- push: how the department's own system authenticates when it sends us events (docs/departments.md) -------


class PushMutualTls(_Kind, frozen=True, tag="mutual_tls"):
    """A client certificate: the TLS-terminating proxy in front of the gateway (one of its trusted proxies) checks
    it and forwards it URL-encoded in ``header``; the gateway checks again that ``ca_file`` (relative to the data
    dir) issued it, that it is valid now and that its subject common name is ``subject``."""

    ca_file: str
    subject: str
    header: str = "X-Client-Cert"


class PushToken(_Kind, frozen=True, tag="token"):
    """A bearer token of role ``department`` bound to this department (``onewindow tokens create --role department
    --department CODE``)."""


#: ``hmac`` is the connectors' signing scheme (the same headers and string to sign), with the department's key.
PushAuth = HmacAuth | PushMutualTls | PushToken

# --- paging -----------------------------------------------------------------------------------------------

PageSize = Annotated[int, msgspec.Meta(ge=1, le=5000)]
MaxPages = Annotated[int, msgspec.Meta(ge=1)]


class CursorPaging(_Kind, frozen=True, tag="cursor"):
    """An opaque next-page cursor from each response; stops when it is missing, empty or repeated."""

    cursor_param: str
    next_cursor: str  # path in the response to the next cursor
    limit_param: str = ""
    page_size: PageSize = 500
    max_pages: MaxPages = 100_000


class OffsetPaging(_Kind, frozen=True, tag="offset"):
    """``offset``/``limit`` style; stops on a short or empty page, at ``total`` or when ``has_more`` is false."""

    offset_param: str
    limit_param: str
    page_size: PageSize = 500
    total: str = ""  # path to the total number of records, when the department sends it
    has_more: str = ""  # path to a "more pages follow" flag, when the department sends it
    max_pages: MaxPages = 100_000


class PageNumberPaging(_Kind, frozen=True, tag="page_number"):
    """Numbered pages; stops on an empty page, after ``total_pages``, when ``total`` records have been served, or on a
    short page (unless ``total_pages`` says more follow)."""

    page_param: str
    size_param: str
    page_size: PageSize = 500
    first_page: int = 1
    total_pages: str = ""  # path to the number of pages, when the department sends it
    #: Path to the number of records in the whole listing, when the department sends that instead of pages.
    total: str = ""
    max_pages: MaxPages = 100_000


Paging = CursorPaging | OffsetPaging | PageNumberPaging

# --- formats ----------------------------------------------------------------------------------------------

#: What a business error inside a 2xx answer means: worth retrying, a failure of the call, or a refusal of these
#: records (the call's records are recorded as rejected and the sync goes on).
Outcome = Literal["retriable", "fatal", "rejected"]


class ResultRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Result codes (as text) and what they mean."""

    codes: list[str]
    outcome: Outcome


class _Envelope(_Kind, frozen=True, kw_only=True):
    #: Path to an application-level result code, and the value meaning success (e.g. ``code`` = ``0``).
    result_code: str = ""
    result_ok: str = "0"
    #: Path to the department's words for a non-success code (reported with it).
    result_message: str = ""
    #: What the other codes mean; a code no rule lists means ``result_default``.
    result_rules: list[ResultRule] = []
    result_default: Outcome = "fatal"


class JsonFormat(_Envelope, frozen=True, kw_only=True, tag="json"):
    """A JSON object; ``items`` is the dotted path to the array of records."""

    items: str


class XmlFormat(_Envelope, frozen=True, kw_only=True, tag="xml"):
    """An XML document; ``records`` is the ElementTree path (from the root) of the record elements.

    Parsed with defusedxml: documents with a DTD or entity declarations are rejected.
    """

    records: str


Format = JsonFormat | XmlFormat

# --- endpoints --------------------------------------------------------------------------------------------


class Endpoint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    path: str
    #: Fixed query parameters sent with every call.
    query: dict[str, str] = {}


class BulkEndpoint(Endpoint, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The paged list of all certificates, ordered by change time, with an "updated since" filter."""

    updated_since_param: str = ""
    #: ``iso`` (ISO 8601 with offset) or a strftime pattern such as ``%Y%m%d%H%M%S`` (in the mapping's utc_offset).
    updated_since_format: str = "iso"


class HolderEndpoint(Endpoint, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All certificates of one holder. ``path`` may contain ``{holder_id}``; else ``holder_param`` carries it."""

    holder_param: str = ""
    types_param: str = ""
    types_separator: str = ","


class Endpoints(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    health: Endpoint
    bulk: BulkEndpoint
    holder: HolderEndpoint


# --- field mapping ----------------------------------------------------------------------------------------

Transform = Literal["empty_as_none", "strip", "compact_date", "compact_datetime"]


class FieldMapping(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where each unified `Certificate` field is in a department record: a dotted path (JSON) or a child
    element name (XML). An empty path means the department does not send the field (its default applies)."""

    identifier: str
    number: str
    type_code: str
    name: str
    holder_name: str
    holder_code: str
    holder_code_type: str = ""
    issuer_name: str
    issuer_code: str
    issue_date: str
    valid_from: str
    valid_until: str = ""
    status: str = ""
    division_code: str = ""
    #: Path to an object of string attributes (JSON).
    attributes: str = ""
    #: Attribute name -> path, for departments that send type-specific facts as plain fields (XML).
    attribute_fields: dict[str, str] = {}
    signature_alg: str = ""
    signature_key_id: str = ""
    signature_value: str = ""
    #: The department's change time, for incremental sync.
    updated_at: str = ""
    #: Value transforms per unified field name, applied in order (``valid_until = ["empty_as_none"]``).
    transforms: dict[str, list[Transform]] = {}
    #: Typed value rules per unified field name (`connectors.rules`: date formats, code tables, sentinels).
    rules: dict[str, ValueRule] = {}
    #: Offset of local times that carry none (compact datetimes, the updated-since parameter).
    utc_offset: str = "+08:00"

    def tzinfo(self) -> dt.timezone:
        return parse_utc_offset(self.utc_offset)


#: The unified `Certificate` fields a department record maps onto one by one (attributes and signature apart).
CERTIFICATE_FIELDS: tuple[str, ...] = (
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

MAPPED_FIELDS: tuple[str, ...] = (
    *CERTIFICATE_FIELDS,
    "signature_alg",
    "signature_key_id",
    "signature_value",
    "updated_at",
)

_OFFSET_RE = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_utc_offset(text: str) -> dt.timezone:
    m = _OFFSET_RE.match(text)
    if m is None:
        raise ValueError(f"utc_offset must look like +08:00, got {text!r}")
    minutes = int(m[2]) * 60 + int(m[3])
    return dt.timezone(dt.timedelta(minutes=-minutes if m[1] == "-" else minutes))


# --- runtime policies -------------------------------------------------------------------------------------

Seconds = Annotated[float, msgspec.Meta(gt=0)]


class Timeouts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Per attempt: connect (incl. TLS), read (between bytes), total (one request, all of it)."""

    connect: Seconds = 3.0
    read: Seconds = 10.0
    total: Seconds = 30.0


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Retries of retriable failures only (timeouts, connection errors, 5xx, 429)."""

    attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 4
    initial_backoff: Annotated[float, msgspec.Meta(ge=0)] = 0.2
    max_backoff: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: Random extra wait, up to this many seconds, so many clients do not retry in step.
    jitter: Annotated[float, msgspec.Meta(ge=0)] = 0.2
    #: A department's ``Retry-After`` is honoured up to this many seconds.
    retry_after_cap: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: Overall deadline for one call including all its retries.
    deadline: Seconds = 60.0


class BreakerPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Opens after ``failure_threshold`` consecutive retriable failures; one probe after ``cool_down`` seconds."""

    failure_threshold: Annotated[int, msgspec.Meta(ge=1)] = 5
    cool_down: Seconds = 30.0


class Quality(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a department counts as degraded: more than this share of the records a sync received were rejected
    (could not be decoded or mapped)."""

    max_rejected_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05


class CustomClient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Escape hatch: ``class = "package.module:ClassName"`` implementing `DepartmentClient`."""

    class_: str = msgspec.field(name="class")
    options: dict[str, Any] = {}


# --- the department ---------------------------------------------------------------------------------------

Code = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]*$")]


class DepartmentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Code
    name: str
    base_url: str
    #: Certificate types this department issues: our type key -> official type code (证照类型代码).
    types: dict[str, str]
    auth: Auth = NoAuth()
    format: Format | None = None
    paging: Paging | None = None
    endpoints: Endpoints | None = None
    mapping: FieldMapping | None = None
    timeouts: Timeouts = Timeouts()
    #: Requests in flight to this department at most (per process).
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=256)] = 4
    retry: RetryPolicy = RetryPolicy()
    breaker: BreakerPolicy = BreakerPolicy()
    custom: CustomClient | None = None
    quality: Quality = Quality()
    #: False keeps the file but skips the department in sync, check and lookup.
    enabled: bool = True
    #: How the department's system authenticates when it pushes events for its cases (none: it cannot push).
    push: PushAuth | None = None

    def rebased(self, base_url: str) -> DepartmentSpec:
        """The same connector pointed at another base URL (simulators on ephemeral ports, staging systems)."""
        return msgspec.structs.replace(self, base_url=base_url.rstrip("/"))

    @property
    def type_keys_by_code(self) -> dict[str, str]:
        return {code: key for key, code in self.types.items()}

    def declared(self) -> tuple[Format, Paging, Endpoints, FieldMapping]:
        """The declarative parts; only a custom connector may leave them out (checked when the file loads)."""
        if self.format is None or self.paging is None or self.endpoints is None or self.mapping is None:
            raise ValueError(f"department {self.code} is custom and has no declarative parts")
        return self.format, self.paging, self.endpoints, self.mapping


class SpecError(ValueError):
    """One or more department files are invalid; ``problems`` holds one ``file: field: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _where(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Split msgspec's ``message - at `$.a.b[0]``` into ``("a.b[0]", message)``."""
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        return "", text
    return where.rstrip("`").removeprefix("$").lstrip("."), message


def _semantic_problems(spec: DepartmentSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not spec.base_url.startswith(("http://", "https://")):
        problems.append(("base_url", "must start with http:// or https://"))
    if isinstance(spec.auth, MutualTlsAuth) and not spec.base_url.startswith("https://"):
        problems.append(("base_url", "mutual_tls needs an https:// base URL"))
    if not spec.types:
        problems.append(("types", "list at least one certificate type (type key = type code)"))
    if spec.custom is not None:
        if ":" not in spec.custom.class_:
            problems.append(("custom.class", 'must look like "package.module:ClassName"'))
        return problems
    for section in ("format", "paging", "endpoints", "mapping"):
        if getattr(spec, section) is None:
            problems.append((section, "required unless [custom] names a class"))
    mapping = spec.mapping
    if mapping is not None:
        try:
            mapping.tzinfo()
        except ValueError as exc:
            problems.append(("mapping.utc_offset", str(exc)))
        for name in mapping.transforms:
            if name not in MAPPED_FIELDS:
                problems.append(
                    (f"mapping.transforms.{name}", f"not a mapped field (one of {', '.join(MAPPED_FIELDS)})")
                )
        for name, rule in mapping.rules.items():
            where = f"mapping.rules.{name}"
            if name not in MAPPED_FIELDS:
                problems.append((where, f"not a mapped field; use one of {', '.join(MAPPED_FIELDS)}"))
                continue
            if not getattr(mapping, name):
                problems.append((where, f"mapping.{name} is empty: name the department's field, or drop the rule"))
            if mapping.transforms.get(name):
                problems.append((where, f"declare a rule or transforms for {name}, not both: drop transforms.{name}"))
            problems.extend(
                (f"{where}.{path}", message) for path, message in rule_problems(name, rule, types=spec.types)
            )
        if isinstance(spec.format, XmlFormat) and mapping.attributes:
            problems.append(("mapping.attributes", "XML records carry attributes as fields: use attribute_fields"))
    endpoints = spec.endpoints
    if endpoints is not None:
        holder = endpoints.holder
        if "{holder_id}" not in holder.path and not holder.holder_param:
            problems.append(("endpoints.holder", "put {holder_id} in path or name holder_param"))
        fmt = endpoints.bulk.updated_since_format
        if fmt != "iso" and "%" not in fmt:
            problems.append(("endpoints.bulk.updated_since_format", 'must be "iso" or a strftime pattern'))
    if spec.format is not None:
        problems.extend(_result_problems(spec.format))
    return problems


def _result_problems(fmt: Format) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (fmt.result_rules or fmt.result_message) and not fmt.result_code:
        problems.append(("format.result_code", "result_rules and result_message need the path of the result code"))
    seen: dict[str, int] = {}
    for index, rule in enumerate(fmt.result_rules):
        where = f"format.result_rules[{index}].codes"
        if not rule.codes:
            problems.append((where, 'list the result codes this rule is about, e.g. codes = ["50001"]'))
        for code in rule.codes:
            if code == fmt.result_ok:
                problems.append((where, f"{code!r} is result_ok (success); drop it from the rule"))
            elif code in seen:
                problems.append((where, f"{code!r} is listed by result_rules[{seen[code]}] too; keep it in one"))
            seen.setdefault(code, index)
    return problems


def _locate(raw: bytes, where: str, message: str) -> tuple[str, str]:
    """msgspec names a table entry ``[...]``; find which one (value rules: the field they are declared for)."""
    if not where.startswith("mapping.rules[...]"):
        return where, message
    doc = msgspec.toml.decode(raw)
    rules = doc.get("mapping", {}).get("rules", {}) if isinstance(doc, dict) else {}
    for name, rule in rules.items() if isinstance(rules, dict) else ():
        try:
            msgspec.convert(rule, ValueRule, strict=True)
        except msgspec.ValidationError as exc:
            inner, inner_message = _where(exc)
            if inner.startswith("sentinels[...]") and isinstance(rule.get("sentinels"), dict):
                bad = [k for k, v in rule["sentinels"].items() if v not in ("no_expiry", "unknown")]
                inner = f"sentinels.{bad[0]!r}" if bad else "sentinels"
            return f"mapping.rules.{name}" + (f".{inner}" if inner else ""), inner_message
    return where, message


def _hint(where: str, message: str) -> str:
    """msgspec's message with the fix, for the mistakes operators make most."""
    if where.startswith("mapping.rules.") and where.endswith(".kind"):
        return f"{message}; use one of {', '.join(RULE_KINDS)}"
    if where.startswith("mapping.rules.") and ".sentinels." in where:
        return f'{message}; use "no_expiry" or "unknown"'
    if where.endswith(".outcome") or where.endswith("result_default"):
        return f"{message}; use retriable, fatal or rejected"
    return message


def decode_department(data: bytes | str, *, source: str = "<department>") -> DepartmentSpec:
    """Decode one department file; `SpecError` lines read ``source: field.path: message``."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        spec = msgspec.toml.decode(raw, type=DepartmentSpec, strict=True)
    except msgspec.ValidationError as exc:
        where, message = _where(exc)
        if "[...]" in where:
            where, message = _locate(raw, where, message)
        raise SpecError([f"{source}: {where or '(file)'}: {_hint(where, message)}"]) from exc
    except msgspec.DecodeError as exc:
        raise SpecError([f"{source}: (file): not valid TOML: {exc}"]) from exc
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError([f"{source}: {where}: {message}" for where, message in problems])
    return spec


def load_department_file(path: Path) -> DepartmentSpec:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([f"{path}: (file): {exc.strerror or exc}"]) from exc
    spec = decode_department(data, source=str(path))
    if spec.code != path.stem:
        raise SpecError([f"{path}: code: must equal the file name ({path.stem!r}), got {spec.code!r}"])
    return spec
