"""The OpenAPI document says what the gateway does: the pieces that make it so at the source.

- `RequestStructSchemaPlugin`: a request Struct that forbids unknown fields is ``additionalProperties: false``,
  and the fields a Struct lists in ``api_required`` are required in the document even where the Struct gives them
  a default (so that the service can name every missing field in one 422, instead of the decoder stopping at
  the first).
- `documented_string`: the schema of a string parameter that the service checks itself (a pattern, a length,
  required) — documented exactly, while the service keeps answering its own problem for it (the public tracking
  routes' uniform 404, a 422 naming ``purpose``).
- `document_common_responses`: the answers every operation can give whatever it does — 400 (a bad parameter or
  a body that is not JSON), 401 (no or an unknown token), 403 (a role the operation is not for), 415 and 422
  (a JSON body of another media type or shape) — each as problem+json, added where the route does not describe
  them itself.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.enums import RequestEncodingType
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import BodyKwarg
from litestar.plugins import OpenAPISchemaPlugin
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from gateway.identity.auth import EXCLUDE_KEY, PUBLIC_PATHS
from gateway.problems import problem_spec

#: The Struct class attribute naming fields required in the API: ``api_required: ClassVar[tuple[str, ...]]``.
API_REQUIRED = "api_required"


class RequestStructSchemaPlugin(OpenAPISchemaPlugin):
    """Litestar's own Struct schemas, plus ``additionalProperties: false`` and the ``api_required`` fields.

    Installed ahead of Litestar's plugins; it has the next plugin that supports a Struct (Litestar's) build the
    schema, then adds what that one leaves out."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        builtin = next(
            p
            for p in schema_creator.plugins
            if p is not self and schema_creator.plugin_supports_field(p, field_definition)
        )
        schema: Schema = builtin.to_openapi_schema(field_definition, schema_creator)
        struct = field_definition.type_
        info = msgspec.inspect.type_info(struct)
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                schema.additional_properties = False
            names = {f.name: f.encode_name for f in info.fields}
            extra = [names[n] for n in getattr(struct, API_REQUIRED, ()) if n in names]
            if extra:
                schema.required = sorted({*(schema.required or []), *extra})
        return schema


def documented_string(
    *,
    pattern: str | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    nullable: bool = False,
) -> dict[str, Any]:
    """``schema_extra`` for a ``str | None`` parameter that the service validates. Required ones are shown as a
    plain string with these constraints; ``nullable`` ones keep ``oneOf: [string, null]`` with the constraints
    beside it (they bind the string only): an optional parameter whose value is the string ``null`` is read as
    absent, so the document must allow it."""
    extra: dict[str, Any] = {} if nullable else {"one_of": None, "type": OpenAPIType.STRING}
    if pattern is not None:
        extra["pattern"] = pattern
    if min_length is not None:
        extra["min_length"] = min_length
    if max_length is not None:
        extra["max_length"] = max_length
    return extra


BAD_REQUEST = problem_spec("A parameter is invalid, or the body is not JSON; `errors` names each")
UNAUTHORIZED = problem_spec("No bearer token, or an unknown or revoked one (`WWW-Authenticate` says which)")
FORBIDDEN = problem_spec("The caller's role may not use this operation")
UNSUPPORTED_BODY = problem_spec("The body is not sent as application/json")
UNSUPPORTED_FORM = problem_spec("The body is not multipart/form-data")
INVALID_BODY = problem_spec("A field of the body is invalid; `errors` names each")


def _is_public(handler: HTTPRouteHandler, path: str) -> bool:
    return bool(handler.opt.get(EXCLUDE_KEY)) or any(re.search(p, path) for p in PUBLIC_PATHS)


def _common(handler: HTTPRouteHandler, path: str) -> dict[int, ResponseSpec]:
    common: dict[int, ResponseSpec] = {}
    signature = handler.parsed_fn_signature.parameters
    takes_input = any(
        name not in {"principal", "request", "context"} and not field.is_di_field for name, field in signature.items()
    )
    if takes_input or "{" in path:
        common[400] = BAD_REQUEST
    if not _is_public(handler, path):
        common[401] = UNAUTHORIZED
    if handler.resolve_guards():
        common[403] = FORBIDDEN
    body = handler.parsed_data_field
    if body is not None:
        encoding = body.kwarg_definition.media_type if isinstance(body.kwarg_definition, BodyKwarg) else None
        if encoding == RequestEncodingType.MULTI_PART:
            common[415] = UNSUPPORTED_FORM
        else:
            common[415] = UNSUPPORTED_BODY
            common[422] = INVALID_BODY
    return common


def document_common_responses(app: Litestar) -> None:
    """Add the common answers to every operation that does not describe them itself (call once, after the routes
    are registered and before the schema is first served)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
                continue
            own = dict(handler.responses or {})
            handler.responses = {**_common(handler, route.path), **own}


__all__ = [
    "API_REQUIRED",
    "RequestStructSchemaPlugin",
    "document_common_responses",
    "documented_string",
]
