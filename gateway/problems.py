"""Errors as RFC 9457 problem details (``application/problem+json``), everywhere.

Error families carry their HTTP status at class level::

    ProblemError                    base; status 500 unless a subclass says otherwise
    ├── BadRequest (400)            malformed JSON, invalid query parameter
    ├── Unauthorized (401)          missing or unknown bearer token
    ├── Forbidden (403)             role may not call this operation at all
    ├── NotFound (404)              missing, or outside the caller's scope (same answer on purpose)
    ├── Conflict (409)              illegal transition, stale ETag, idempotency key in flight
    ├── PreconditionFailed (412)    If-Match does not match
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── Unprocessable (422)         validation: `errors` lists each field and message
    ├── TooManyRequests (429)
    ├── ServiceUnavailable (503)     a dependency is down or busy; always with Retry-After
    └── InsufficientStorage (507)   the upload directory is full

No handler ever shows a stack trace to a client; unexpected exceptions are logged and answer a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("onewindow.problems")

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The standard members of every error body. An answer may add members of its own (``allowed``, ``missing``,
    ``current_status``…) next to them, never in their place: ``status`` is always the HTTP status."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


#: Members an extra may never replace (nor fill in when they are absent).
STANDARD_MEMBERS: frozenset[str] = frozenset(Problem.__struct_fields__)


class ProblemError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"
    slug: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extra = extra
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> Problem:
        return Problem(
            type=f"https://onewindow.invalid/problems/{self.slug}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        )


class BadRequest(ProblemError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthorized(ProblemError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(ProblemError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(ProblemError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(ProblemError):
    status, title, slug = 409, "Conflict", "conflict"


class PreconditionFailed(ProblemError):
    status, title, slug = 412, "Precondition failed", "precondition-failed"


class PayloadTooLarge(ProblemError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class UnsupportedMediaType(ProblemError):
    status, title, slug = 415, "Unsupported media type", "unsupported-media-type"


class Unprocessable(ProblemError):
    status, title, slug = 422, "Validation failed", "validation"


class TooManyRequests(ProblemError):
    status, title, slug = 429, "Too many requests", "rate-limited"


class ServiceUnavailable(ProblemError):
    status, title, slug = 503, "Service unavailable", "unavailable"


class InsufficientStorage(ProblemError):
    status, title, slug = 507, "Insufficient storage", "insufficient-storage"


_ENCODER = msgspec.json.Encoder()


def problem_body(problem: Problem, extra: dict[str, Any] | None = None) -> bytes:
    """The JSON body: the standard members, then each extra member whose name is not a standard one (an extra
    named like one is dropped, and logged: it is a programming error, and must not change what clients read)."""
    body: dict[str, Any] = msgspec.to_builtins(problem)
    for name, value in (extra or {}).items():
        if name in STANDARD_MEMBERS:
            log.warning("problem extra %r ignored: it would replace a standard member", name)
            continue
        body[name] = value
    return _ENCODER.encode(body)


def problem_response(
    problem: Problem, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
) -> Response[bytes]:
    return Response(
        content=problem_body(problem, extra),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_spec(description: str) -> ResponseSpec:
    """An error response in a route's OpenAPI ``responses``: problem+json, with what it means on that route."""
    return ResponseSpec(
        data_container=Problem, media_type=PROBLEM_JSON, description=description, generate_examples=False
    )


def _problem_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.to_problem(request.url.path), exc.headers, exc.extra)


def allowed_values(tp: Any, path: Sequence[str] = ()) -> list[str] | None:
    """The values an enumerated type allows (a ``Literal`` or an ``Enum``, maybe optional), following ``path``
    through Struct fields (by their JSON names); None when it is not enumerated."""
    try:
        info = msgspec.inspect.type_info(tp)
    except (TypeError, ValueError):
        return None
    return _allowed(info, list(path))


def _allowed(info: msgspec.inspect.Type, path: list[str]) -> list[str] | None:
    if isinstance(info, msgspec.inspect.Metadata):
        return _allowed(info.type, path)
    if isinstance(info, msgspec.inspect.UnionType):
        for member in info.types:
            if (found := _allowed(member, path)) is not None:
                return found
        return None
    if not path:
        if isinstance(info, msgspec.inspect.LiteralType):
            return sorted(str(v) for v in info.values)
        if isinstance(info, msgspec.inspect.EnumType):
            return sorted(str(member.value) for member in info.cls)
        return None
    if isinstance(info, msgspec.inspect.StructType):
        for field in info.fields:
            if field.encode_name == path[0]:
                return _allowed(field.type, path[1:])
    return None


def one_of(values: list[str] | None) -> str:
    return f"must be one of: {', '.join(values)}" if values else "is not one of the allowed values"


#: Litestar's message for a missing required parameter (it goes on to repeat the URL, which is not answered).
_MISSING_PARAMETER = re.compile(r"^Missing required (?P<source>[a-z]+) parameter '(?P<name>[^']{1,64})'")
#: A message that quotes something may be quoting the client's value: it is replaced.
_QUOTES = re.compile(r"['\"]")


def _parameter_type(request: Request[Any, Any, Any], key: str) -> Any:
    signature = getattr(request.scope.get("route_handler"), "parsed_fn_signature", None)
    for name, field in getattr(signature, "parameters", {}).items():
        if key in (name, getattr(field.kwarg_definition, "name", None)):
            return field.annotation
    return Any


def _field_from_litestar(request: Request[Any, Any, Any], raw: dict[str, Any]) -> FieldError:
    key = str(raw.get("key") or "body")
    source = raw.get("source")
    if key == "data":
        key = "body"
    if source and source != "body" and key == "body":
        key = str(source)
    # Litestar has cut msgspec's " - at `$…`" already; what is left states a type or a bound, or an enum's value.
    message = str(raw.get("message", "is not valid")).split(" - ", 1)[0]
    if message.startswith(("Invalid enum value", "Invalid value")):
        message = one_of(allowed_values(_parameter_type(request, key)))
    elif _QUOTES.search(message):
        message = "is not valid"
    elif key == "body" and message.startswith("Object missing required field"):
        message = "is required: a JSON body"
    return FieldError(field=key[:64], message=message)


def _validation_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar's validation errors (query, path, header parameters; a missing body) as problems that name each
    field — and never repeat the request's URL, whose query may carry a query code or a purpose."""
    assert isinstance(exc, ValidationException)
    raw = [e for e in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(e, dict)]
    errors = [_field_from_litestar(request, e) for e in raw]
    sources = {str(e.get("source") or "body") for e in raw}
    if not errors:
        missing = _MISSING_PARAMETER.match(str(exc.detail))
        if missing is not None:
            errors, sources = [FieldError(missing["name"], "is required")], {missing["source"]}
        else:
            errors, sources = [FieldError("request", "is not valid")], {"request"}
    # A field of the body is a 422; a parameter, or a body that is missing altogether, is a 400.
    in_body = sources == {"body"} and all(e.field != "body" for e in errors)
    cls: type[ProblemError] = Unprocessable if in_body else BadRequest
    names = ", ".join(dict.fromkeys(e.field for e in errors))
    detail = f"Invalid {'body' if in_body else 'request'}: see {names}."
    return problem_response(cls(detail, errors=errors).to_problem(request.url.path))


def _http_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail)
    title = {401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    problem = Problem(
        type=f"https://onewindow.invalid/problems/http-{status}",
        title=title,
        status=status,
        detail=str(exc.detail) if status < 500 else "The server could not complete the request.",
        instance=request.url.path,
    )
    return problem_response(problem, dict(exc.headers or {}))


def _unexpected_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(
        type="https://onewindow.invalid/problems/internal",
        title="Internal server error",
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        detail="The server could not complete the request; the operator's log has the reference.",
        instance=request.url.path,
    )
    return problem_response(problem)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ProblemError: _problem_error_handler,
    ValidationException: _validation_handler,
    NotAuthorizedException: _http_handler,
    HTTPException: _http_handler,
    Exception: _unexpected_handler,
}

__all__ = [
    "PROBLEM_JSON",
    "STANDARD_MEMBERS",
    "BadRequest",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InsufficientStorage",
    "MediaType",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "Problem",
    "ProblemError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "allowed_values",
    "one_of",
    "problem_body",
    "problem_response",
    "problem_spec",
]
