"""Signs audit checkpoints in the background while the gateway runs, and once more at shutdown.

A checkpoint is signed when ``audit_checkpoint_every`` records have accumulated since the last one, or when
``audit_checkpoint_seconds`` have passed and there is anything new. Several processes may run this; the
checkpoint itself is serialised in the database, so they never sign the same head twice. Every checkpoint also
goes to the configured witnesses (`gateway.audit.witness`); one a witness missed is sent again on a later round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from litestar import Litestar

from gateway.audit.keys import AuditSigner, load_or_create_signer
from gateway.audit.log import pending
from gateway.audit.witness import Witness, publish_missing, seal, witnesses_from_settings
from gateway.context import context_of
from gateway.storage.database import Database
from gateway.storage.faults import log_failed_round
from gateway.storage.metadata import utcnow

log = logging.getLogger("onewindow.audit")


async def checkpoint_if_due(
    db: Database, signer: AuditSigner, *, every: int, seconds: float, witnesses: Sequence[Witness] = ()
) -> bool:
    """Sign a checkpoint if enough records or time have accumulated; True when one was signed."""
    async with db.read() as conn:
        count, last_at = await pending(conn)
    if count <= 0:
        return False
    age = None if last_at is None else (utcnow() - last_at).total_seconds()
    if count >= every or age is None or age >= seconds:
        await seal(db, signer, witnesses)
        return True
    return False


async def _checkpoint_loop(
    db: Database, signer: AuditSigner, every: int, seconds: float, witnesses: Sequence[Witness]
) -> None:
    poll = min(max(seconds / 10, 1.0), 30.0)
    rounds = 0
    while True:
        await asyncio.sleep(poll)
        try:
            await checkpoint_if_due(db, signer, every=every, seconds=seconds, witnesses=witnesses)
            if witnesses and rounds % 10 == 0:  # now and then: what a witness missed while it was unreachable
                await publish_missing(db, witnesses)
        except Exception as exc:  # keep signing later; the log says why it failed now
            log_failed_round(log, "audit checkpoint", exc)
        rounds += 1


@contextlib.asynccontextmanager
async def audit_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Sets the context's ``audit_signer`` and runs the checkpoint task (needs its ``database``)."""
    context = context_of(app)
    settings = context.settings
    db = context.database
    signer = load_or_create_signer(settings.data_dir)
    context.audit_signer = signer
    witnesses = witnesses_from_settings(settings)
    task = asyncio.create_task(
        _checkpoint_loop(db, signer, settings.audit_checkpoint_every, settings.audit_checkpoint_seconds, witnesses),
        name="audit-checkpoints",
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            await seal(db, signer, witnesses)  # the shutdown checkpoint covers everything written so far
        except Exception as exc:  # the next start's first checkpoint covers these records
            log_failed_round(log, "final audit checkpoint", exc)
