"""Audit: an append-only, hash-chained log of who did what, to which object, for what purpose.

Public API::

    from gateway import audit
    await audit.append(conn, actor=principal.actor, role=principal.role, action="status.changed",
                                object_type="application", object_id=app_id, purpose=..., detail={...})
    cp = await audit.checkpoint(db, signer)            # sign the head (the app does this periodically)
    result = await audit.verify(db, signer.public_key) # result.ok, result.summary()
"""

from __future__ import annotations

from gateway.audit.keys import (
    AuditKeyError,
    AuditKeyring,
    AuditSigner,
    load_or_create_signer,
    load_public_key,
    load_signer,
)
from gateway.audit.log import (
    AuditRecord,
    Checkpoint,
    VerifyResult,
    append,
    checkpoint,
    head,
    history,
    last_checkpoint,
    pending,
    records,
    verify,
)

__all__ = [
    "AuditKeyError",
    "AuditKeyring",
    "AuditRecord",
    "AuditSigner",
    "Checkpoint",
    "VerifyResult",
    "append",
    "checkpoint",
    "head",
    "history",
    "last_checkpoint",
    "load_or_create_signer",
    "load_public_key",
    "load_signer",
    "pending",
    "records",
    "verify",
]
