"""`onewindow keys status|rotate|generate|retire`: the data keys that encrypt personal data.

* ``status`` — where the keys come from, which is active, and how many stored values (and uploaded scans) each key
  encrypts;
* ``rotate`` — a new active data key (key file), then every encrypted column re-encrypted under it in batches and
  every uploaded scan sealed again under it;
  with keys from the environment, put the new key first in ``ONEWINDOW_DATA_KEYS`` everywhere, then run it;
* ``generate`` — print a fresh random key (base64) for ``ONEWINDOW_DATA_KEYS`` / ``ONEWINDOW_INDEX_KEY``;
* ``retire KEY`` — drop an old data key from the key file once no stored value and no uploaded scan uses it.

Exit status: 0 done, 1 values left under an old key or undecryptable, 2 bad keys or settings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.commands.support import add_settings_options
from gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:  # the command line starts fast: the key modules (cryptography) load when a command runs
    from gateway.privacy.fields import FieldCipher
    from gateway.privacy.keys import KeyRing


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="personal-data encryption keys: status, rotate, generate, retire")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        add_settings_options(q, data_dir_help="data directory holding keys/ (default ./var)")

    status = keys_sub.add_parser("status", help="show the keys and how many stored values each encrypts")
    common(status)
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    status.set_defaults(handler=run_status)

    rotate = keys_sub.add_parser("rotate", help="new active data key, then re-encrypt every encrypted column")
    common(rotate)
    rotate.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    rotate.add_argument(
        "--resume", action="store_true", help="no new key: finish re-encrypting under the current active key"
    )
    rotate.add_argument("--json", action="store_true", help="one JSON report on stdout")
    rotate.set_defaults(handler=run_rotate)

    generate = keys_sub.add_parser("generate", help="print a new random 32-byte key, base64")
    generate.add_argument("--id", dest="key_id", help="print as '<id>:<key>' for ONEWINDOW_DATA_KEYS")
    generate.set_defaults(handler=run_generate)

    retire = keys_sub.add_parser(
        "retire",
        help="remove an old data key that no stored value uses any more (wait one idempotency TTL after a "
        "rotation: kept POST responses sealed with it can no longer be replayed)",
    )
    common(retire)
    retire.add_argument("key_id", help="the data key id to remove")
    retire.set_defaults(handler=run_retire)


def _load(args: argparse.Namespace) -> tuple[Settings, KeyRing]:
    from gateway.privacy.keys import KeyRing

    settings = load_settings(args.config, data_dir=args.data_dir)
    return settings, KeyRing.load(settings.data_dir)


def _fail(message: str) -> int:
    print(f"onewindow keys: {message}", file=sys.stderr)
    return 2


def _database_exists(settings: Settings) -> bool:
    from sqlalchemy import make_url

    return not settings.is_sqlite or Path(make_url(settings.sqlalchemy_url).database or "").exists()


async def _usage(settings: Settings, cipher: FieldCipher) -> tuple[list[Any], list[str]]:
    import gateway.storage.tables  # noqa: F401 - each domain's tables register their encrypted columns
    from gateway.privacy.registry import encrypted_columns
    from gateway.privacy.rotation import key_usage
    from gateway.storage import Database

    if not _database_exists(settings):
        return [], sorted({c.table for c in encrypted_columns()})  # no database yet: do not create one
    db = Database.from_settings(settings)
    try:
        return await key_usage(db, cipher)
    finally:
        await db.dispose()


def run_status(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.intake import uploads
    from gateway.privacy.fields import FieldCipher
    from gateway.privacy.keys import ENV_DATA_KEYS, KeyRingError

    try:
        settings, keyring = _load(args)
    except (SettingsError, KeyRingError) as exc:
        return _fail(str(exc))
    cipher = FieldCipher(keyring)
    usage_error = ""
    try:
        usage, missing = asyncio.run(_usage(settings, cipher))
    except Exception as exc:  # the key facts are still worth showing without a database
        usage, missing, usage_error = [], [], f"{type(exc).__name__}: {exc}"
    document: dict[str, Any] = {
        "source": keyring.source,
        "path": str(keyring.path) if keyring.path else None,
        "active": keyring.active_key_id,
        "keys": [{"id": k, "created": keyring.created_at(k) or None} for k in keyring.key_ids],
        "columns": msgspec.to_builtins(usage),
        "missing_tables": missing,
        "uploads": uploads.key_usage(settings.data_dir),
    }
    if usage_error:
        document["database_error"] = usage_error
    if args.json:
        print(msgspec.json.encode(document).decode())
        return 0
    where = f"file {keyring.path}" if keyring.path else f"environment ({ENV_DATA_KEYS})"
    print(f"keys from {where}; active data key: {keyring.active_key_id}")
    for key_id in keyring.key_ids:
        created = keyring.created_at(key_id)
        marker = " (active)" if key_id == keyring.active_key_id else ""
        print(f"  {key_id}{marker}" + (f"  created {created}" if created else ""))
    if usage_error:
        print(f"stored values: database not readable ({usage_error})")
    for entry in usage:
        counts = ", ".join(f"{k}={n}" for k, n in entry.by_key.items() if n) or "empty"
        print(f"  {entry.table}.{entry.column}: {counts}")
    scans = ", ".join(f"{k}={n}" for k, n in sorted(document["uploads"].items())) or "none"
    print(f"  uploaded scans: {scans}")
    for table in missing:
        print(f"  {table}: not in the database yet")
    return 0


async def _rotate(settings: Settings, cipher: FieldCipher, batch_size: int, quiet: bool) -> Any:
    import gateway.storage.tables  # noqa: F401 - each domain's tables register their encrypted columns
    from gateway.privacy.rotation import reencrypt_all
    from gateway.storage import Database

    def progress(table: str, column: str, n: int) -> None:
        if not quiet:
            print(f"  {table}.{column}: +{n}", flush=True)

    db = Database.from_settings(settings)
    try:
        return await reencrypt_all(db, cipher, batch_size=batch_size, progress=progress)
    finally:
        await db.dispose()


def run_rotate(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.intake import uploads
    from gateway.privacy.fields import FieldCipher
    from gateway.privacy.keys import ENV_DATA_KEYS, KeyRingError

    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    try:
        settings, keyring = _load(args)
        if args.resume:
            message = f"re-encrypting under the active key {keyring.active_key_id}"
        elif keyring.source == "file":
            new_id = keyring.add_data_key()
            message = f"new active data key {new_id} written to {keyring.path}"
        else:
            message = f"keys from {ENV_DATA_KEYS}: re-encrypting under its first key {keyring.active_key_id}"
    except (SettingsError, KeyRingError) as exc:
        return _fail(str(exc))
    if not args.json:
        print(message, flush=True)
    cipher = FieldCipher(keyring)
    report = asyncio.run(_rotate(settings, cipher, args.batch_size, quiet=args.json))
    resealed, unopened = uploads.reseal_all(settings.data_dir, cipher)
    if args.json:
        print(
            msgspec.json.encode(
                msgspec.to_builtins(report) | {"scans_resealed": resealed, "scans_failed": unopened}
            ).decode()
        )
    else:
        print(f"sealed {resealed} uploaded scan(s) again under {cipher.keyring.active_key_id}")
        if unopened:
            print(f"  {unopened} uploaded scan(s) do not open to their hash; left as they are")
        print(f"re-encrypted {report.reencrypted} values under {report.active_key_id} in {report.passes} pass(es)")
        for entry in report.columns:
            if entry.failed:
                rows = ", ".join(entry.failed_rows)
                print(f"  {entry.table}.{entry.column}: {entry.failed} value(s) do not decrypt (rows {rows})")
        for table in report.missing_tables:
            print(f"  {table}: not in the database yet")
        if report.remaining:
            print(f"{report.remaining} value(s) are still under an old key; old keys stay in the ring")
    return 0 if report.ok and not unopened else 1


def run_generate(args: argparse.Namespace) -> int:
    from gateway.privacy.keys import encode_key, generate_key

    key = encode_key(generate_key())
    print(f"{args.key_id}:{key}" if args.key_id else key)
    return 0


def run_retire(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.intake import uploads
    from gateway.privacy.fields import FieldCipher
    from gateway.privacy.keys import KeyRingError

    try:
        settings, keyring = _load(args)
    except (SettingsError, KeyRingError) as exc:
        return _fail(str(exc))
    if args.key_id not in keyring.key_ids:
        return _fail(f"data key {args.key_id!r} is not in the key ring ({', '.join(keyring.key_ids)})")
    if args.key_id == keyring.active_key_id:
        return _fail(f"{args.key_id!r} is the active key; run `onewindow keys rotate` first")
    try:
        usage, _ = asyncio.run(_usage(settings, FieldCipher(keyring)))
    except Exception as exc:
        return _fail(f"cannot check the database ({type(exc).__name__}); the key stays")
    still = sum(entry.by_key.get(args.key_id, 0) for entry in usage)
    still += uploads.key_usage(settings.data_dir).get(args.key_id, 0)
    if still:
        print(f"onewindow keys: {still} stored value(s) still use {args.key_id}; run `onewindow keys rotate`",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        keyring.remove_data_key(args.key_id)
    except KeyRingError as exc:
        return _fail(str(exc))
    print(f"data key {args.key_id} removed from {keyring.path}")
    return 0
