"""Request bodies: JSON decoded strictly into the operation's declared type, and nothing else taken for JSON.

`create_app` installs `GatewayRequest` (its ``json()`` is what Litestar calls for a ``data`` parameter) and
`check_body` (a ``before_request`` hook, so every rejection happens before the handler and changes nothing):

- a JSON body must say so (``Content-Type: application/json`` or ``application/<something>+json``): anything
  else, or no ``Content-Type`` at all, answers 415; a multipart operation answers 415 to anything that is not
  ``multipart/form-data``;
- a body that is not JSON — invalid UTF-8, broken syntax, nesting deeper than the decoder follows, or no body at
  all where one is required — answers 400 naming ``body``;
- a JSON body is decoded with msgspec's *strict* rules straight into the operation's Struct: ``"true"`` is not a
  bool, ``"5"`` and ``5.0`` are not integers, unknown members of a Struct that forbids them are refused, and
  ``msgspec.Meta`` constraints hold — each a 422 naming the field (``applicant.id_number``, ``level``…).

No message repeats what the client sent (values may be personal data or a query code): messages name the field
and what it must be. A route may ask to hear about rejected bodies first with the ``opt`` key
`ON_REJECTED_BODY` — an async callable taking the request, awaited before the answer, which may raise a problem of
its own (the public tracking routes count a rejected body as a failed attempt and answer 429 once the client is
blocked).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import BodyKwarg
from litestar.types import Empty
from litestar.typing import FieldDefinition

from gateway.problems import (
    BadRequest,
    FieldError,
    ProblemError,
    Unprocessable,
    UnsupportedMediaType,
    allowed_values,
    one_of,
)

#: Route ``opt`` key: ``async (request) -> None``, awaited before a rejected body is answered (it may raise).
ON_REJECTED_BODY = "on_rejected_body"

RejectedBodyHook = Callable[[Request[Any, Any, Any]], Awaitable[None]]

_JSON_MEDIA = re.compile(r"^application/(?:[a-z0-9!#$&^_.-]+\+)?json$")
_MULTIPART_MEDIA = "multipart/form-data"
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_QUOTED_FIELD = re.compile(r"field `(?P<name>[^`]*)`")
#: Longest field name an answer repeats (an unknown member's name comes from the client).
_NAME_MAX = 64
_DECODER = msgspec.json.Decoder()


def media_type(request: Request[Any, Any, Any]) -> str:
    """The request's media type, lower case, without parameters ("" when there is no ``Content-Type``)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _body_field(request: Request[Any, Any, Any]) -> FieldDefinition | None:
    route_handler = request.scope.get("route_handler")
    field = getattr(route_handler, "parsed_data_field", None)
    return field if isinstance(field, FieldDefinition) else None


def _encoding(field: FieldDefinition) -> RequestEncodingType | str:
    kwarg = field.kwarg_definition
    return kwarg.media_type if isinstance(kwarg, BodyKwarg) else RequestEncodingType.JSON


async def reject(request: Request[Any, Any, Any], problem: ProblemError) -> ProblemError:
    """``problem``, after the route's `ON_REJECTED_BODY` hook (which may raise a problem of its own instead)."""
    route_handler = request.scope.get("route_handler")
    hook: RejectedBodyHook | None = getattr(route_handler, "opt", {}).get(ON_REJECTED_BODY)
    if hook is not None:
        await hook(request)
    return problem


def _path_name(path: str) -> str:
    """``$.applicant.id_number`` → ``applicant.id_number``; ``$`` → ``body``."""
    name = path.lstrip(".")
    return name[:_NAME_MAX] if name else "body"


def _join(prefix: str, name: str) -> str:
    name = name[:_NAME_MAX]
    return name if prefix == "body" else f"{prefix}.{name}"


def field_error(error: msgspec.ValidationError, target: Any = Any) -> FieldError:
    """The field a strict decoding error of a ``target`` is about and what it must be, without the value the
    client sent."""
    m = _AT.match(str(error))
    path = m["path"] or "" if m else ""
    message, field = (m["message"], _path_name(path)) if m else (str(error), "body")
    if message.startswith("Object missing required field"):
        named = _QUOTED_FIELD.search(message)
        return FieldError(_join(field, named["name"]) if named else field, "is required")
    if message.startswith("Object contains unknown field"):
        named = _QUOTED_FIELD.search(message)
        return FieldError(_join(field, named["name"]) if named else field, "is not a field of this request")
    if message.startswith(("Invalid enum value", "Invalid value")):
        return FieldError(field, one_of(allowed_values(target, re.findall(r"\.([^.\[]+)", path))))
    # msgspec's other messages state the expected type or bound ("Expected `int`, got `str`", "Expected `str`
    # of length <= 500"), never the value.
    return FieldError(field, message)


def decode_json_body(body: bytes, content_type: str, target: Any) -> Any:
    """``body`` decoded strictly into ``target``; the problem to answer otherwise (415, 400 or 422)."""
    if not _JSON_MEDIA.match(content_type):
        raise UnsupportedMediaType(
            "This operation takes a JSON body: send it with Content-Type: application/json.",
            errors=[FieldError("Content-Type", "must be application/json")],
        )
    # Two steps, so that whatever is not JSON is a 400 whatever the operation expects where it occurs: a body too
    # deeply nested for the decoder is refused even where a typed decoder would stop early at a wrong type.
    try:
        value = _DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, OverflowError):
        raise BadRequest(
            "The body is not valid JSON (UTF-8, well formed, nested at most a few hundred levels).",
            errors=[FieldError("body", "is not valid JSON")],
        ) from None
    try:
        return msgspec.convert(value, type=target, strict=True)
    except msgspec.ValidationError as exc:
        raise Unprocessable(
            "The body does not fit this operation's schema.", errors=[field_error(exc, target)]
        ) from None
    except RecursionError:
        raise BadRequest("The body is nested too deeply.", errors=[FieldError("body", "is not valid JSON")]) from None


class GatewayRequest(Request[Any, Any, Any]):
    """Litestar's request, with ``json()`` decoding strictly into the operation's body type (module docstring)."""

    async def json(self) -> Any:
        if self._json is Empty:
            state = self._connection_state
            if state.json is not Empty:
                self._json = state.json
            else:
                field = _body_field(self)
                target: Any = field.annotation if field is not None else Any
                body = await self.body()
                try:
                    value = decode_json_body(body, media_type(self), target)
                except ProblemError as problem:
                    raise await reject(self, problem) from None
                self._json = state.json = value
        return self._json


async def check_body(request: Request[Any, Any, Any]) -> None:
    """``before_request``: the body's media type and JSON are checked (and decoded) before anything else runs."""
    field = _body_field(request)
    if field is None:
        return
    encoding = _encoding(field)
    if encoding == RequestEncodingType.MULTI_PART:
        if media_type(request) != _MULTIPART_MEDIA:
            raise await reject(
                request,
                UnsupportedMediaType(
                    "This operation takes multipart/form-data.",
                    errors=[FieldError("Content-Type", f"must be {_MULTIPART_MEDIA}")],
                ),
            )
        return
    if encoding != RequestEncodingType.JSON:
        return
    if not await request.body():
        if field.is_optional:
            return
        raise await reject(
            request, BadRequest("This operation needs a JSON body.", errors=[FieldError("body", "is required")])
        )
    await request.json()


__all__ = [
    "ON_REJECTED_BODY",
    "GatewayRequest",
    "RejectedBodyHook",
    "check_body",
    "decode_json_body",
    "field_error",
    "media_type",
    "reject",
]
