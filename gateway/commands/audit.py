"""`onewindow audit verify|checkpoint|public-key`: check and seal the tamper-evident audit log.

``verify`` exits 0 when the chain is intact ("N records, chain intact, last checkpoint …") and 1 naming the first
broken record. Checkpoint signatures are checked with the data dir's key, or with ``--public-key FILE`` — a copy
kept elsewhere, which is what makes a rewrite by someone holding the data dir detectable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the command line starts fast: the heavy modules load when a command runs
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from gateway.audit.log import Checkpoint, VerifyResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify and checkpoint the audit log")
    actions = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="recompute the hash chain and check the signed checkpoints")
    check.add_argument("--public-key", type=Path, help="PEM public key to check checkpoints with")
    check.set_defaults(handler=_verify)

    seal = actions.add_parser("checkpoint", help="sign the current head of the chain")
    seal.set_defaults(handler=_checkpoint)

    show = actions.add_parser("public-key", help="print the audit signing key's public half (PEM)")
    show.set_defaults(handler=_public_key)

    for parser in (check, seal, show):
        parser.add_argument("--data-dir", type=Path)
        parser.add_argument("--config", type=Path, help="TOML settings file ([gateway] table)")


def _settings(args: argparse.Namespace, command: str) -> Settings | None:
    try:
        return load_settings(args.config, data_dir=args.data_dir)
    except SettingsError as exc:
        print(f"onewindow audit {command}: {exc}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, key_path, load_public_key, load_signer
    from gateway.audit.log import verify
    from gateway.storage.database import Database

    settings = _settings(args, "verify")
    if settings is None:
        return 2
    try:
        keys: list[Ed25519PublicKey] = []
        if args.public_key is not None:
            keys.append(load_public_key(args.public_key))
        else:
            signer = load_signer(settings.data_dir)
            if signer is not None:
                keys.append(signer.public_key)
    except AuditKeyError as exc:
        print(f"onewindow audit verify: {exc}", file=sys.stderr)
        return 2

    async def run() -> VerifyResult:
        db = Database.from_settings(settings)
        try:
            await db.migrate()
            return await verify(db, keys)
        finally:
            await db.dispose()

    result = asyncio.run(run())
    if result.ok:
        print(result.summary())
        return 0
    if not keys and result.checkpoints and "invalid signature" in (result.reason or ""):
        print(f"onewindow audit verify: no public key ({key_path(settings.data_dir)} is missing)", file=sys.stderr)
    print(result.summary())
    return 1


def _checkpoint(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, load_or_create_signer
    from gateway.audit.log import checkpoint
    from gateway.storage.database import Database

    settings = _settings(args, "checkpoint")
    if settings is None:
        return 2

    async def run() -> Checkpoint | None:
        db = Database.from_settings(settings)
        try:
            await db.migrate()
            return await checkpoint(db, load_or_create_signer(settings.data_dir))
        finally:
            await db.dispose()

    try:
        cp = asyncio.run(run())
    except AuditKeyError as exc:
        print(f"onewindow audit checkpoint: {exc}", file=sys.stderr)
        return 2
    if cp is None:
        print("The audit log is empty; nothing to sign.")
    else:
        print(f"Checkpoint at record #{cp.seq} ({cp.hash[:16]}…) signed with key {cp.key_id} at {cp.at.isoformat()}.")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, load_or_create_signer

    settings = _settings(args, "public-key")
    if settings is None:
        return 2
    try:
        signer = load_or_create_signer(settings.data_dir)
    except AuditKeyError as exc:
        print(f"onewindow audit public-key: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(signer.public_key_pem().decode("ascii"))
    return 0
