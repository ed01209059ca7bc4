"""Identity: opaque bearer tokens, roles, scope rules, and their Litestar guards.

Public API::

    from gateway.identity import CurrentPrincipal, Principal, Role, require_roles, create_token
    token, record = await create_token(db, role="clerk", unit="yaowan")   # token printed once, stored hashed
    @get(..., guards=[require_roles(Role.OFFICER)])
    async def handler(principal: CurrentPrincipal) -> ...: ...   # "principal": app-level dependency
"""

from __future__ import annotations

from gateway.identity.auth import (
    BEARER_SECURITY,
    EXCLUDE_KEY,
    BearerAuthMiddleware,
    CurrentPrincipal,
    auth_middleware,
    provide_principal,
    require_roles,
)
from gateway.identity.authenticator import TokenAuthenticator
from gateway.identity.principal import KNOWN_SCOPES, Principal, Role
from gateway.identity.tokens import (
    TOKEN_PREFIX,
    TokenRecord,
    codes_check,
    create_token,
    get_token,
    hash_token,
    list_tokens,
    principal_for_token,
    revoke_token,
)

__all__ = [
    "BEARER_SECURITY",
    "EXCLUDE_KEY",
    "KNOWN_SCOPES",
    "TOKEN_PREFIX",
    "BearerAuthMiddleware",
    "CurrentPrincipal",
    "Principal",
    "Role",
    "TokenAuthenticator",
    "TokenRecord",
    "auth_middleware",
    "codes_check",
    "create_token",
    "get_token",
    "hash_token",
    "list_tokens",
    "principal_for_token",
    "provide_principal",
    "require_roles",
    "revoke_token",
]
