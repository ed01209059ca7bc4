"""`GET /api/v1/me`: who the bearer token says the caller is (lets a client check its token and scope)."""

from __future__ import annotations

from litestar import get

from gateway.identity.auth import CurrentPrincipal
from gateway.identity.principal import Principal


@get("/api/v1/me", operation_id="whoAmI", tags=["identity"], summary="The caller's role and binding")
async def whoami(principal: CurrentPrincipal) -> Principal:
    return principal
