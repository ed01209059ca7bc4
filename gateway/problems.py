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
    └── TooManyRequests (429)

No handler ever shows a stack trace to a client; unexpected exceptions are logged and answer a bare 500.
"""

from __future__ import annotations

import logging
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
    return ResponseSpec(data_container=Problem, media_type=PROBLEM_JSON, description=description)


def _problem_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.to_problem(request.url.path), exc.headers, exc.extra)


def _field_from_litestar(raw: dict[str, Any]) -> FieldError:
    key = str(raw.get("key") or "body")
    source = raw.get("source")
    message = str(raw.get("message", "invalid"))
    if source and source != "body" and key == "body":
        key = str(source)
    return FieldError(field=key, message=message)


def _validation_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ValidationException)
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_from_litestar(e) for e in extra if isinstance(e, dict)]
    detail = str(exc.detail)
    # A body that is not JSON at all is a 400; a body of the wrong shape is a 422 naming the field.
    malformed = "malformed" in detail.lower() or "json is malformed" in detail.lower()
    cls: type[ProblemError] = (
        BadRequest if (malformed or not errors or _is_query_error(errors, extra)) else (Unprocessable)
    )
    if not errors:
        errors = [FieldError(field="body", message=detail)]
    return problem_response(cls(detail, errors=errors).to_problem(request.url.path))


def _is_query_error(errors: list[FieldError], extra: list[Any]) -> bool:
    return any(isinstance(e, dict) and e.get("source") in {"query", "path", "header"} for e in extra)


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
    "problem_body",
    "problem_response",
    "problem_spec",
]
