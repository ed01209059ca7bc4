"""Sets the context's ``authenticator`` (needs its ``database``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.identity.authenticator import TokenAuthenticator


@contextlib.asynccontextmanager
async def identity_lifespan(app: Litestar) -> AsyncIterator[None]:
    context = context_of(app)
    context.authenticator = TokenAuthenticator(context.database)
    yield
