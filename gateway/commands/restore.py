"""`onewindow restore --from DIR [--keys-from KEYDIR] [--public-key F] [--witness W]`: fill an empty data dir from a
backup made by `onewindow backup` and verify the whole audit chain (exit 1 when it is broken, 2 when the backup is
refused: damaged, or the data dir not empty). See `gateway.backups.archive`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.commands.support import add_settings_options, command_settings, run_on_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = sub.add_parser("restore", help="restore a backup into an empty data dir and verify the audit chain")
    load.add_argument("--from", dest="source", type=Path, required=True, help="the backup directory")
    load.add_argument("--keys-from", type=Path, help="the key files copied with backup --keys-to")
    load.add_argument("--public-key", type=Path, help="PEM public key to check audit checkpoints with")
    load.add_argument("--witness", type=Path, help="witness directory to check the restored audit log against")
    load.set_defaults(handler=_restore)
    add_settings_options(load)


def _restore(args: argparse.Namespace) -> int:
    from gateway.audit.keys import AuditKeyError, AuditKeyring, load_public_key
    from gateway.audit.log import Checkpoint
    from gateway.audit.witness import DirectoryWitness, WitnessError
    from gateway.backups.archive import BackupError, prepare_restore, restore_check

    settings = command_settings(args, "restore")
    if settings is None:
        return 2
    try:
        keyring = None if args.public_key is None else AuditKeyring(load_public_key(args.public_key))
        witness_dir = args.witness if args.witness is not None else settings.audit_witness_dir
        held: list[Checkpoint] | None = None if witness_dir is None else DirectoryWitness(witness_dir).checkpoints()
        manifest = prepare_restore(settings, args.source, keys_from=args.keys_from)
    except (BackupError, AuditKeyError, WitnessError) as exc:
        print(f"onewindow restore: {exc}", file=sys.stderr)
        return 2
    result = run_on_database(settings, lambda db: restore_check(settings, db, public_keys=keyring, witness=held))
    print(f"Restored the backup of {manifest.created_at.isoformat()} into {settings.data_dir}.")
    print(f"audit: {result.summary()}")
    if result.ok and result.head_seq < manifest.audit_head_seq:
        print(f"audit: the chain ends at #{result.head_seq}, the backup's manifest says #{manifest.audit_head_seq}")
        return 1
    return 0 if result.ok else 1
