"""`onewindow audit verify|checkpoint|public-key`: check and seal the tamper-evident audit log.

``verify`` exits 0 when the chain is intact ("N records, chain intact, last checkpoint …") and 1 naming the first
broken record. Checkpoint signatures are checked with the data dir's key, or with ``--public-key FILE`` — a copy
kept elsewhere, which is what makes a rewrite by someone holding the data dir detectable. ``--witness DIR`` (default:
the configured ``audit_witness_dir``) also checks the log against the checkpoints copied out of the database, which
is what reveals the last records deleted together with their checkpoints. ``checkpoint`` sends the checkpoint it
signs, and any the witness is missing, to the configured witness.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.commands.support import add_settings_options, command_settings, run_on_database

if TYPE_CHECKING:  # the command line starts fast: the heavy modules load when a command runs
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="verify and checkpoint the audit log")
    actions = p.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    check = actions.add_parser("verify", help="recompute the hash chain and check the signed checkpoints")
    check.add_argument("--public-key", type=Path, help="PEM public key to check checkpoints with")
    check.add_argument(
        "--witness",
        type=Path,
        help="directory of witnessed checkpoints to check the log against (default: audit_witness_dir, if set)",
    )
    check.set_defaults(handler=_verify)

    seal = actions.add_parser("checkpoint", help="sign the current head of the chain")
    seal.set_defaults(handler=_checkpoint)

    show = actions.add_parser("public-key", help="print the audit signing key's public half (PEM)")
    show.set_defaults(handler=_public_key)

    for parser in (check, seal, show):
        add_settings_options(parser)


def _verify(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, key_path, load_public_key, load_signer
    from gateway.audit.log import Checkpoint, verify
    from gateway.audit.witness import DirectoryWitness, WitnessError

    settings = command_settings(args, "audit verify")
    if settings is None:
        return 2
    witness_dir = args.witness if args.witness is not None else settings.audit_witness_dir
    held: list[Checkpoint] | None = None
    if witness_dir is not None:
        try:
            held = DirectoryWitness(witness_dir).checkpoints()
        except WitnessError as exc:
            print(f"onewindow audit verify: {exc}", file=sys.stderr)
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

    result = run_on_database(settings, lambda db: verify(db, keys, witness=held))
    if result.ok:
        print(result.summary())
        return 0
    if not keys and result.checkpoints and "invalid signature" in (result.reason or ""):
        print(f"onewindow audit verify: no public key ({key_path(settings.data_dir)} is missing)", file=sys.stderr)
    print(result.summary())
    return 1


def _checkpoint(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, load_or_create_signer
    from gateway.audit.log import Checkpoint
    from gateway.audit.witness import publish_missing, seal, witnesses_from_settings
    from gateway.storage.database import Database

    settings = command_settings(args, "audit checkpoint")
    if settings is None:
        return 2
    witnesses = witnesses_from_settings(settings)

    async def sign(db: Database) -> Checkpoint | None:
        cp = await seal(db, load_or_create_signer(settings.data_dir), witnesses)
        await publish_missing(db, witnesses)
        return cp

    try:
        cp = run_on_database(settings, sign)
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

    settings = command_settings(args, "audit public-key")
    if settings is None:
        return 2
    try:
        signer = load_or_create_signer(settings.data_dir)
    except AuditKeyError as exc:
        print(f"onewindow audit public-key: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(signer.public_key_pem().decode("ascii"))
    return 0
