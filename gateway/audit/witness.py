"""Witnesses: copies of every signed audit checkpoint kept outside the database.

A checkpoint inside the database proves nothing to someone who can also delete it: removing the last records
together with the last checkpoint (the append-only triggers dropped first, as a database administrator could)
leaves a shorter chain that verifies. A witness holds each checkpoint where that administrator cannot reach, so
``onewindow audit verify --witness DIR`` finds the chain shorter than what was once signed, or different from it.

A witness is anything with ``publish(checkpoint)`` and ``checkpoints()`` (`Witness`). The one built in is
`DirectoryWitness`: a directory — on other storage, another host's mount, a write-once bucket synchronised from
it — holding one small JSON file per checkpoint, ``<seq, 20 digits>.json``. Files are written atomically (a
temporary file, fsynced, then hard-linked into place) and never replaced: publishing a checkpoint whose file
exists already leaves that file as it is. A subscriber or the provincial platform would be another `Witness` added
to `witnesses_from_settings`.

Publishing happens after the checkpoint has committed. If it fails (the directory is unreachable), the gateway
logs it and `publish_missing` catches up on the next round: every checkpoint the witness lacks is sent again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec
from sqlalchemy import select

from gateway.audit.keys import AuditSigner
from gateway.audit.log import Checkpoint, checkpoint
from gateway.audit.tables import audit_checkpoints
from gateway.settings import Settings
from gateway.storage.database import Database

log = logging.getLogger("onewindow.audit.witness")

_FILE = re.compile(r"^(?P<seq>[0-9]{20})\.json$")
_ENCODER = msgspec.json.Encoder(order="sorted")


class WitnessError(Exception):
    """A witness could not be written or read; the message names it."""


class Witness(Protocol):
    """Somewhere outside the database that keeps every signed checkpoint it is given."""

    name: str

    def publish(self, cp: Checkpoint) -> bool:
        """Keep ``cp``; True when it was new to this witness. Never replaces a checkpoint it holds."""
        ...

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint held, in seq order."""
        ...


class _Stored(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str


class DirectoryWitness:
    """One JSON file per checkpoint in ``path``; written atomically, never overwritten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = f"directory {path}"

    def file_of(self, seq: int) -> Path:
        return self.path / f"{seq:020d}.json"

    def publish(self, cp: Checkpoint) -> bool:
        target = self.file_of(cp.seq)
        if target.exists():
            return False
        body = _ENCODER.encode(_Stored(**msgspec.structs.asdict(cp))) + b"\n"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = self.path / f".{target.name}.{secrets.token_hex(6)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, target)  # fails if the file exists: what is written stays written
                except FileExistsError:
                    return False
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(self.path)
        except OSError as exc:
            raise WitnessError(f"audit witness {self.path}: {exc.strerror or exc}") from exc
        return True

    def checkpoints(self) -> list[Checkpoint]:
        if not self.path.is_dir():
            raise WitnessError(f"audit witness {self.path}: not a directory")
        found: list[Checkpoint] = []
        decoder = msgspec.json.Decoder(_Stored)
        for entry in sorted(self.path.iterdir()):
            match = _FILE.match(entry.name)
            if match is None:
                continue
            try:
                stored = decoder.decode(entry.read_bytes())
            except (OSError, msgspec.DecodeError) as exc:
                raise WitnessError(f"audit witness {entry}: unreadable ({exc})") from exc
            if stored.seq != int(match["seq"]):
                raise WitnessError(f"audit witness {entry}: holds the checkpoint of #{stored.seq}")
            found.append(Checkpoint(**msgspec.structs.asdict(stored)))
        return found


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory; the file itself is synced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def witnesses_from_settings(settings: Settings) -> list[Witness]:
    """The witnesses the settings configure (``audit_witness_dir``); empty when none is."""
    witnesses: list[Witness] = []
    if settings.audit_witness_dir is not None:
        witnesses.append(DirectoryWitness(settings.audit_witness_dir))
    return witnesses


def publish(witnesses: Iterable[Witness], cp: Checkpoint) -> int:
    """Give ``cp`` to every witness; how many took it as new. A failing witness is logged, never raised: the
    checkpoint has committed, and `publish_missing` sends it again later."""
    taken = 0
    for witness in witnesses:
        try:
            taken += witness.publish(cp)
        except WitnessError as exc:
            log.error("audit checkpoint #%d not witnessed: %s", cp.seq, exc)
    return taken


async def publish_missing(db: Database, witnesses: Sequence[Witness]) -> int:
    """Send every checkpoint of the database that a witness does not hold yet; how many were sent."""
    if not witnesses:
        return 0
    async with db.read() as conn:
        rows = (await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq))).all()
    stored = [Checkpoint(seq=int(r.seq), hash=r.hash, at=r.at, key_id=r.key_id, signature=r.signature) for r in rows]
    sent = 0
    for witness in witnesses:
        try:
            held = {cp.seq for cp in witness.checkpoints()} if _exists(witness) else set()
            for cp in stored:
                if cp.seq not in held:
                    sent += witness.publish(cp)
        except WitnessError as exc:
            log.error("audit witness catch-up failed: %s", exc)
    return sent


def _exists(witness: Witness) -> bool:
    return not isinstance(witness, DirectoryWitness) or witness.path.is_dir()


async def seal(db: Database, signer: AuditSigner, witnesses: Sequence[Witness]) -> Checkpoint | None:
    """Sign the head (`gateway.audit.log.checkpoint`) and hand the checkpoint to every witness."""
    cp = await checkpoint(db, signer)
    if cp is not None:
        publish(witnesses, cp)
    return cp


__all__ = [
    "DirectoryWitness",
    "Witness",
    "WitnessError",
    "publish",
    "publish_missing",
    "seal",
    "witnesses_from_settings",
]
