"""Append, checkpoint and verify the audit log.

`append` runs inside the caller's write transaction, so the audit record commits or rolls back together with
the change it describes. In a `Database.transaction` the records wait until the transaction's block has ended
and are then chained and inserted in one statement, just before the commit (`gateway.storage.commit`), in the
order they were appended. Writes are serialised so the chain stays one line: PostgreSQL takes a
transaction-scoped advisory lock before reading the chain head; SQLite's ``BEGIN IMMEDIATE``
(`Database.transaction`) already holds the only write lock. The lock is held until the commit — since the
records are written last, only for that one statement and the commit.

`verify` recomputes the whole chain and checks every checkpoint; it names the first record that is not what
was written: edited (hash mismatch), deleted (a gap in seq), inserted or reordered (previous-hash mismatch),
or rewritten consistently after a checkpoint (checkpoint hash mismatch). Records appended after the last
checkpoint and then removed from the end cannot be told from records never written; checkpoints bound that loss.
Removing the last records together with their checkpoints is found only against a copy of the checkpoints kept
outside the database: ``verify(..., witness=...)`` (`gateway.audit.witness`).
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit.chain import GENESIS_HASH, canonical_checkpoint, normalize_detail, record_hash
from gateway.audit.keys import AuditKeyring, AuditSigner
from gateway.audit.tables import audit_checkpoints, audit_records
from gateway.storage.commit import before_commit
from gateway.storage.database import Database
from gateway.storage.locks import lock_key
from gateway.storage.metadata import new_id, utcnow

#: PostgreSQL advisory lock key serialising appends to the chain (and checkpoints reading its head).
AUDIT_LOCK_KEY = 0x6F77_6175  # "owau"

_VERIFY_BATCH = 2000


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    at: datetime
    actor: str
    role: str | None
    action: str
    object_type: str
    object_id: str
    purpose: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    records: int
    head_seq: int
    head_hash: str
    checkpoints: int
    last_checkpoint: Checkpoint | None = None
    #: The first record found broken (its seq, and its id when the row exists).
    broken_seq: int | None = None
    broken_id: str | None = None
    reason: str | None = None
    #: How many checkpoints held by a witness outside the database were checked against the chain.
    witnessed: int = 0

    def summary(self) -> str:
        """One line for operators: what was checked and, if broken, the first broken record."""
        if self.ok:
            if self.last_checkpoint is None:
                cp = "no checkpoint yet"
            else:
                cp = f"last checkpoint at #{self.last_checkpoint.seq} ({self.last_checkpoint.at.isoformat()})"
            seen = f", {self.witnessed} witnessed checkpoints match" if self.witnessed else ""
            return f"{self.records} records, chain intact, {cp}{seen}"
        where = f"record #{self.broken_seq}" + (f" (id {self.broken_id})" if self.broken_id else "")
        return f"{self.records} records, chain BROKEN at {where}: {self.reason}"


_FIELD_LIMITS = {"actor": 100, "role": 16, "action": 64, "object_type": 64, "object_id": 128, "purpose": 200}


async def append(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    purpose: str | None = None,
    detail: dict[str, Any] | None = None,
    role: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one record to the chain within ``conn``'s (write) transaction.

    ``actor`` is ``token:<id>``, ``system`` or ``cli:<user>``; ``action`` a dotted verb such as
    ``application.created``, ``status.changed``, ``personal_data.read``, ``certificate.pulled``; ``purpose`` the
    reason (e.g. ``application:<id>``). ``detail`` is a small JSON object and never holds plaintext personal data.

    Inside a `Database.transaction` the record is checked now and written just before the transaction commits,
    with the transaction's other records, in the order they were appended (`gateway.storage.commit`); so it is
    not yet in ``audit_records`` while the transaction runs. On any other connection it is written at once. (A
    savepoint that rolls back does not take back a record appended inside it: append after the savepoint.)
    """
    values = {"actor": actor, "action": action, "object_type": object_type, "object_id": object_id}
    for name, value in (*values.items(), ("purpose", purpose), ("role", role)):
        if value is None and name in ("purpose", "role"):
            continue
        if not isinstance(value, str) or not value or len(value) > _FIELD_LIMITS[name]:
            raise ValueError(f"audit {name} must be a non-empty string of at most {_FIELD_LIMITS[name]} characters")
    entry: dict[str, Any] = {
        "id": new_id(),
        "at": at or utcnow(),  # datetime holds microseconds, exactly what both databases keep
        "actor": actor,
        "role": role,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "purpose": purpose,
        "detail": normalize_detail(detail),
    }
    stage = before_commit(conn)
    if stage is None:
        await _write(conn, [entry])
        return
    batch: list[dict[str, Any]] | None = stage.state.get(_BATCH)
    if batch is None:
        batch = stage.state[_BATCH] = []
        stage.add(_BATCH, functools.partial(_write, entries=batch))
    batch.append(entry)


#: The key of a transaction's waiting records in its commit stage.
_BATCH = object()
_HEAD = select(audit_records.c.seq, audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
_INSERT = insert(audit_records)
_LOCK = text(f"SELECT pg_advisory_xact_lock({lock_key('key')})")


async def _write(conn: AsyncConnection, entries: list[dict[str, Any]]) -> None:
    """Chain ``entries`` (in order) onto the head and insert them in one statement. PostgreSQL takes the chain's
    advisory lock first and holds it until the commit, so concurrent transactions chain one after the other and
    each one's seqs become visible together, after every lower seq; SQLite's single writer does the same."""
    if not entries:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK, {"key": AUDIT_LOCK_KEY})
    head = (await conn.execute(_HEAD)).first()
    seq = 0 if head is None else int(head.seq)
    prev_hash = GENESIS_HASH if head is None else str(head.hash)
    rows: list[dict[str, Any]] = []
    for entry in entries:
        seq += 1
        fields = {"seq": seq, **entry, "prev_hash": prev_hash}
        prev_hash = record_hash(**fields)
        fields["hash"] = prev_hash
        rows.append(fields)
    await conn.execute(_INSERT, rows)


async def history(conn: AsyncConnection, *, object_type: str, object_id: str, limit: int = 200) -> list[AuditRecord]:
    """The records about one object, oldest first."""
    rows = await conn.execute(
        select(audit_records)
        .where(audit_records.c.object_type == object_type, audit_records.c.object_id == object_id)
        .order_by(audit_records.c.seq)
        .limit(limit)
    )
    return [_record(r) for r in rows]


async def records(conn: AsyncConnection, *, after_seq: int = 0, limit: int = 200) -> list[AuditRecord]:
    """Records in chain order after ``after_seq`` (keyset paging)."""
    rows = await conn.execute(
        select(audit_records).where(audit_records.c.seq > after_seq).order_by(audit_records.c.seq).limit(limit)
    )
    return [_record(r) for r in rows]


async def head(conn: AsyncConnection) -> tuple[int, str]:
    """(seq, hash) of the newest record, or (0, GENESIS_HASH) for an empty log."""
    row = (
        await conn.execute(
            select(audit_records.c.seq, audit_records.c.hash).order_by(audit_records.c.seq.desc()).limit(1)
        )
    ).first()
    return (0, GENESIS_HASH) if row is None else (int(row.seq), str(row.hash))


async def last_checkpoint(conn: AsyncConnection) -> Checkpoint | None:
    row = (await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq.desc()).limit(1))).first()
    return None if row is None else _checkpoint(row)


async def pending(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """How many records follow the last checkpoint, and when that checkpoint was signed (None: never)."""
    head_seq = (await conn.execute(select(func.coalesce(func.max(audit_records.c.seq), 0)))).scalar_one()
    cp = await last_checkpoint(conn)
    return int(head_seq) - (cp.seq if cp else 0), (cp.at if cp else None)


async def checkpoint(db: Database, signer: AuditSigner) -> Checkpoint | None:
    """Sign the current head of the chain. Returns the new checkpoint, the existing one if the head is already
    checkpointed, or None when the log is empty."""
    async with db.transaction() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(_LOCK, {"key": AUDIT_LOCK_KEY})
        seq, digest = await head(conn)
        if seq == 0:
            return None
        latest = await last_checkpoint(conn)
        if latest is not None and latest.seq >= seq:
            return latest
        at = utcnow()
        signature = signer.sign(canonical_checkpoint(seq=seq, hash=digest, at=at, key_id=signer.key_id)).hex()
        cp = Checkpoint(seq=seq, hash=digest, at=at, key_id=signer.key_id, signature=signature)
        await conn.execute(insert(audit_checkpoints).values(id=new_id(), **msgspec.structs.asdict(cp)))
        return cp


async def verify(
    db: Database, public_keys: AuditKeyring | Sequence[Any] | Any, *, witness: Sequence[Checkpoint] | None = None
) -> VerifyResult:
    """Recompute the chain and check every checkpoint; report the first broken record.

    ``public_keys`` is an `AuditKeyring`, one Ed25519 public key, or a sequence of them. ``witness`` is the
    checkpoints a witness outside the database holds (`gateway.audit.witness`): each must carry a valid signature,
    be in the database unchanged, and match the chain at its seq — so records deleted from the end together with
    their checkpoints are reported as missing.
    """
    keyring = _keyring(public_keys)
    async with db.read() as conn:
        checkpoints = [_checkpoint(r) for r in await conn.execute(select(audit_checkpoints).order_by("seq"))]
        by_seq = {cp.seq: cp for cp in checkpoints}
        verifier = _ChainVerifier(keyring, by_seq)
        if witness is not None:
            verifier.witness(witness)
        after = 0
        while verifier.broken is None:
            rows = (
                await conn.execute(
                    select(audit_records)
                    .where(audit_records.c.seq > after)
                    .order_by(audit_records.c.seq)
                    .limit(_VERIFY_BATCH)
                )
            ).all()
            if not rows:
                break
            for row in rows:
                verifier.feed(_record(row))
                if verifier.broken is not None:
                    break
            after = int(rows[-1].seq)
        total = (await conn.execute(select(func.count()).select_from(audit_records))).scalar_one()
    verifier.finish()
    last = checkpoints[-1] if checkpoints else None
    if verifier.broken is None:
        return VerifyResult(
            ok=True,
            records=int(total),
            head_seq=verifier.seq,
            head_hash=verifier.hash,
            checkpoints=len(checkpoints),
            last_checkpoint=last,
            witnessed=len(witness or ()),
        )
    broken_seq, broken_id, reason = verifier.broken
    return VerifyResult(
        ok=False,
        records=int(total),
        head_seq=verifier.seq,
        head_hash=verifier.hash,
        checkpoints=len(checkpoints),
        last_checkpoint=last,
        broken_seq=broken_seq,
        broken_id=broken_id,
        reason=reason,
        witnessed=len(witness or ()),
    )


class _ChainVerifier:
    """Walks records in seq order; remembers the first break."""

    def __init__(self, keyring: AuditKeyring, checkpoints: dict[int, Checkpoint]) -> None:
        self.keyring = keyring
        self.checkpoints = checkpoints
        self.seq = 0
        self.hash = GENESIS_HASH
        self.good_checkpoint = 0  # seq of the newest checkpoint that matched so far
        self.broken: tuple[int, str | None, str] | None = None
        #: The first problem found in a witness's checkpoints, and the seqs only the witness holds.
        self.witness_problem: tuple[int, str | None, str] | None = None
        self.witness_only: set[int] = set()

    def witness(self, held: Sequence[Checkpoint]) -> None:
        """Take a witness's checkpoints in. Each must carry a valid signature and equal the database's checkpoint
        at its seq; one the database lacks is checked against the chain as if it were there. A problem found here
        is reported unless the chain breaks at an earlier record (`finish`)."""
        for cp in held:
            if not self._signature_ok(cp):
                self._witness_break(cp.seq, f"the witness's checkpoint at #{cp.seq} has an invalid signature")
                continue
            mine = self.checkpoints.get(cp.seq)
            if mine is None:
                self.checkpoints[cp.seq] = cp
                self.witness_only.add(cp.seq)
                self._witness_break(
                    cp.seq,
                    f"the checkpoint signed at #{cp.seq} on {cp.at.isoformat()} is held by the witness but missing "
                    "from the database",
                )
            elif (mine.hash, mine.signature, mine.at) != (cp.hash, cp.signature, cp.at):
                self._witness_break(
                    cp.seq, f"checkpoint at #{cp.seq} differs from the witness's copy signed on {cp.at.isoformat()}"
                )

    def _witness_break(self, seq: int, reason: str) -> None:
        if self.witness_problem is None or seq < self.witness_problem[0]:
            self.witness_problem = (seq, None, reason)

    def feed(self, rec: AuditRecord) -> None:
        expected = self.seq + 1
        if rec.seq != expected:
            self.broken = (expected, None, f"record #{expected} is missing (the next record found is #{rec.seq})")
            return
        if rec.prev_hash != self.hash:
            self.broken = (
                rec.seq,
                rec.id,
                f"previous-hash link does not match record #{self.seq} (inserted, reordered or replaced)",
            )
            return
        fields = msgspec.structs.asdict(rec)
        stored = fields.pop("hash")
        if record_hash(**fields) != stored:
            self.broken = (rec.seq, rec.id, "hash does not match the record's content (edited)")
            return
        self.seq, self.hash = rec.seq, stored
        cp = self.checkpoints.get(rec.seq)
        if cp is not None:
            self._check_checkpoint(cp, rec)

    def _check_checkpoint(self, cp: Checkpoint, rec: AuditRecord) -> None:
        if not self._signature_ok(cp):
            self.broken = (cp.seq, rec.id, f"checkpoint at #{cp.seq} has an invalid signature (key {cp.key_id})")
            return
        if cp.hash != rec.hash:
            first = self.good_checkpoint + 1
            self.broken = (
                first,
                None,
                f"records #{first}..#{cp.seq} were rewritten: the chain no longer matches the checkpoint "
                f"signed at #{cp.seq} on {cp.at.isoformat()}",
            )
            return
        self.good_checkpoint = cp.seq

    def _signature_ok(self, cp: Checkpoint) -> bool:
        if cp.key_id not in self.keyring:
            return False
        try:
            signature = binascii.unhexlify(cp.signature)
        except (binascii.Error, ValueError):
            return False
        message = canonical_checkpoint(seq=cp.seq, hash=cp.hash, at=cp.at, key_id=cp.key_id)
        return self.keyring.verify(cp.key_id, signature, message)

    def finish(self) -> None:
        """Checkpoints beyond the end of the chain mean records were removed from its end."""
        self._finish_chain()
        problem = self.witness_problem
        if problem is not None and (self.broken is None or problem[0] < self.broken[0]):
            self.broken = problem

    def _finish_chain(self) -> None:
        if self.broken is not None:
            return
        beyond = [s for s in self.checkpoints if s > self.seq]
        if beyond:
            cp = self.checkpoints[min(beyond)]
            if not self._signature_ok(cp):
                self.broken = (cp.seq, None, f"checkpoint at #{cp.seq} has an invalid signature (key {cp.key_id})")
                return
            self.broken = (
                self.seq + 1,
                None,
                f"records #{self.seq + 1}..#{cp.seq} are missing: a checkpoint signed on {cp.at.isoformat()} "
                f"covers #{cp.seq}" + (" (its copy held by the witness)" if cp.seq in self.witness_only else ""),
            )


def _keyring(public_keys: AuditKeyring | Sequence[Any] | Any) -> AuditKeyring:
    if isinstance(public_keys, AuditKeyring):
        return public_keys
    if isinstance(public_keys, Sequence):
        return AuditKeyring(*public_keys)
    return AuditKeyring(public_keys)


def _record(row: Row[Any]) -> AuditRecord:
    m = row._mapping
    return AuditRecord(
        seq=int(m["seq"]),
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        role=m["role"],
        action=m["action"],
        object_type=m["object_type"],
        object_id=m["object_id"],
        purpose=m["purpose"],
        detail=dict(m["detail"] or {}),
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


def _checkpoint(row: Row[Any]) -> Checkpoint:
    m = row._mapping
    return Checkpoint(seq=int(m["seq"]), hash=m["hash"], at=m["at"], key_id=m["key_id"], signature=m["signature"])


__all__ = [
    "AUDIT_LOCK_KEY",
    "AuditRecord",
    "Checkpoint",
    "VerifyResult",
    "append",
    "checkpoint",
    "head",
    "history",
    "last_checkpoint",
    "pending",
    "records",
    "verify",
]
