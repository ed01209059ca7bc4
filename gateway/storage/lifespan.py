"""The application's database: created and migrated at start-up, disposed at shutdown, probed by readiness."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar

from gateway.context import context_of
from gateway.health.checks import Check, ReadinessCheck
from gateway.storage.database import Database

log = logging.getLogger("onewindow.storage")


def readiness_check(db: Database) -> ReadinessCheck:
    """A critical readiness check: the database answers ``SELECT 1`` within two seconds."""

    async def check() -> Check:
        try:
            await db.ping()
        except Exception as exc:  # the probe reports, it never raises
            return Check(ok=False, critical=True, detail=f"{db.dialect}: {type(exc).__name__}")
        return Check(ok=True, critical=True, detail=db.dialect)

    return check


@contextlib.asynccontextmanager
async def database_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Opens and migrates the context's ``database`` and registers the ``database`` readiness check."""
    context = context_of(app)
    settings = context.settings
    db = Database.from_settings(settings)
    try:
        await db.migrate()
    except BaseException:
        await db.dispose()
        raise
    log.info("database ready: %s", db.describe())
    context.database = db
    context.readiness["database"] = readiness_check(db)
    try:
        yield
    finally:
        await db.dispose()
