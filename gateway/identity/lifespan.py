"""Sets ``app.state.authenticator`` (needs ``app.state.database``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.identity.auth import TokenAuthenticator


@contextlib.asynccontextmanager
async def identity_lifespan(app: Litestar) -> AsyncIterator[None]:
    app.state.authenticator = TokenAuthenticator(app.state.database)
    yield
