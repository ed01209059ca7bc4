"""Litestar integration: bearer authentication middleware, role guards, the ``principal`` dependency, OpenAPI.

Every route requires ``Authorization: Bearer <token>`` unless it opts out with
``opt={"exclude_from_auth": True}`` (public tracking, for example) or lives under ``/health`` or ``/schema``.
The middleware resolves the token to a `Principal` (``request.user``) or answers 401 problem+json with a
``WWW-Authenticate`` header. Guards then decide whether the role may call the operation (403)::

    @post("/applications", guards=[require_roles(Role.CLERK)], operation_id="createApplication")
    async def create(data: NewApplication, principal: CurrentPrincipal) -> ...:
        ...  # out-of-scope objects: raise NotFound, never 403 (see gateway.identity.principal)

Tokens are resolved by the context's `gateway.identity.authenticator.TokenAuthenticator` (cached a few seconds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeAlias

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.handlers.base import BaseRouteHandler
from litestar.handlers.http_handlers import HTTPRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.routes import HTTPRoute

from gateway.context import context_of
from gateway.identity.principal import Principal, Role
from gateway.problems import Forbidden, Unauthorized

#: Paths that never need a token (regular expressions, as Litestar's ``exclude``).
PUBLIC_PATHS = ("^/health/", "^/schema")
#: Route ``opt`` key that makes one operation public.
EXCLUDE_KEY = "exclude_from_auth"
#: Route ``opt`` key, with `EXCLUDE_KEY`: the handler authenticates the caller itself (not public in the OpenAPI
#: document; its own ``security`` says how).
OWN_AUTH_KEY = "authenticates_itself"

BEARER_SCHEME_NAME = "bearer"
BEARER_SECURITY: list[SecurityRequirement] = [{BEARER_SCHEME_NAME: []}]

_CHALLENGE = 'Bearer realm="onewindow"'


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    """Sets ``request.user`` to the caller's `Principal`; 401 problem+json otherwise."""

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if not header:
            raise Unauthorized("This operation needs a bearer token.", headers={"WWW-Authenticate": _CHALLENGE})
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "Use the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_request"'},
            )
        authenticator = context_of(connection.app).authenticator
        principal = await authenticator.authenticate(token)
        if principal is None:
            raise Unauthorized(
                "The bearer token is unknown or revoked.",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
            )
        return AuthenticationResult(user=principal, auth=principal.token_id)


def auth_middleware() -> DefineMiddleware:
    """The middleware as `create_app` installs it."""
    return DefineMiddleware(BearerAuthMiddleware, exclude=list(PUBLIC_PATHS), exclude_from_auth_key=EXCLUDE_KEY)


Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def require_roles(*roles: Role | str, scope: str | None = None) -> Guard:
    """A guard admitting the given roles; with ``scope``, also system tokens that carry that scope.

    ``require_roles(Role.OFFICER, Role.SUPERVISOR)``; ``require_roles(scope="status:read")`` for systems only.
    """
    allowed = frozenset(Role(r) for r in roles)
    if not allowed and scope is None:
        raise ValueError("require_roles needs at least one role or a scope")
    names = sorted(r.value for r in allowed) + ([f"system with scope {scope}"] if scope else [])

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):
            raise Unauthorized("This operation needs a bearer token.", headers={"WWW-Authenticate": _CHALLENGE})
        if principal.role in allowed or (scope is not None and principal.has_scope(scope)):
            return
        raise Forbidden(f"This operation is for: {', '.join(names)}; this token's role is {principal.role.value}.")

    return guard


#: Handler parameter type for the caller: ``async def handler(principal: CurrentPrincipal)`` (the parameter must be
#: named ``principal``, the app-level dependency's key).
CurrentPrincipal: TypeAlias = NamedDependency[Principal]


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The ``principal`` dependency: the authenticated caller of this request."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthorized("This operation needs a bearer token.", headers={"WWW-Authenticate": _CHALLENGE})
    return user


def security_components() -> Components:
    """OpenAPI components declaring the bearer scheme (merged into the app's OpenAPI config)."""
    return Components(
        security_schemes={
            BEARER_SCHEME_NAME: SecurityScheme(
                type="http",
                scheme="bearer",
                bearer_format="opaque (ow_…)",
                description="A token from `onewindow tokens create`; its role and unit/department set the scope.",
            )
        }
    )


def document_public_operations(app: Litestar) -> None:
    """Mark the operations that need no token as anonymous (``security: [{}]``) in the OpenAPI document.

    The document's default requirement is the bearer scheme; public operations override it. Call once, after the
    routes are registered and before the schema is first served.
    """
    public = [re.compile(p) for p in PUBLIC_PATHS]
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if not isinstance(handler, HTTPRouteHandler):
                continue
            if handler.opt.get(OWN_AUTH_KEY):
                continue
            if handler.opt.get(EXCLUDE_KEY) or any(p.search(route.path) for p in public):
                handler.security = [{}]
                handler._resolved_security = [{}]


__all__ = [
    "BEARER_SECURITY",
    "EXCLUDE_KEY",
    "OWN_AUTH_KEY",
    "PUBLIC_PATHS",
    "BearerAuthMiddleware",
    "CurrentPrincipal",
    "auth_middleware",
    "document_public_operations",
    "provide_principal",
    "require_roles",
    "security_components",
]
