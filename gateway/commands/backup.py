"""`onewindow backup`: copy the embedded deployment out while it runs, with the keys handled apart
(`gateway.backups.archive`; `onewindow restore` is `gateway.commands.restore`).

``backup --to DIR [--keys-to KEYDIR]`` signs the audit head, copies the SQLite database (online backup API) and the
uploads to DIR, and the key files only to KEYDIR — never to DIR, never inside the data dir. It warns where the
keys are and that they must be stored apart from the backups.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gateway.commands.support import add_settings_options, command_settings, run_on_database


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    save = sub.add_parser("backup", help="copy the embedded database and uploads (keys apart) while the gateway runs")
    save.add_argument("--to", type=Path, required=True, help="a new or empty directory outside the data dir")
    save.add_argument(
        "--keys-to", type=Path, help="also copy the key files here (store it apart from the backups; 0700/0600)"
    )
    save.set_defaults(handler=_backup)
    add_settings_options(save)


def _backup(args: argparse.Namespace) -> int:
    from gateway.backups.archive import BackupError, backup, check_backup_target, keys_dir

    settings = command_settings(args, "backup")
    if settings is None:
        return 2
    try:
        check_backup_target(settings, args.to, args.keys_to)
        manifest = run_on_database(settings, lambda db: backup(settings, db, args.to, keys_to=args.keys_to))
    except BackupError as exc:
        print(f"onewindow backup: {exc}", file=sys.stderr)
        return 2
    print(
        f"Backup in {args.to.resolve()}: database ({manifest.database_sha256[:16]}…), {manifest.uploads} uploads, "
        f"audit head #{manifest.audit_head_seq} (checkpoint #{manifest.audit_checkpoint_seq})."
    )
    if manifest.missing_uploads:
        print(f"note: {manifest.missing_uploads} uploads were deleted while the backup ran (drafts purged meanwhile).")
    where = keys_dir(settings.data_dir)
    env = " and in ONEWINDOW_DATA_KEYS/ONEWINDOW_INDEX_KEY" if os.environ.get("ONEWINDOW_DATA_KEYS") else ""
    if manifest.key_files:
        print(f"Keys ({', '.join(manifest.key_files)}) copied to {args.keys_to.resolve()}.")
    print(
        f"WARNING: the backup holds no keys. The keys live in {where}{env}; without them the personal data in the "
        "backup cannot be read and the audit checkpoints cannot be checked. Store a copy of the keys apart from the "
        "backups (other media, other custody), never next to them.",
        file=sys.stderr,
    )
    return 0
