"""Uploaded scans: content sniffing and content-addressed storage under ``<data_dir>/uploads``.

The type of a file is what its first bytes say, never its name or the client's Content-Type: a PDF starts with
``%PDF-``, a JPEG with ``FF D8 FF``, a PNG with its 8-byte signature. Anything else is refused (415).

Files are stored once per content: ``uploads/ab/cd/<sha256>`` (the first two byte pairs of the hash fan the files
out over directories; the hash is the scan's, before sealing). A scan is personal data, so the file holds it
sealed — AES-256-GCM with the key ring's active data key (`FieldCipher.seal`), bound to its own hash — and only
`read` opens it, checking the hash again. Files written before scans were sealed hold the plain scan; `read` still
opens them when their hash matches.

A file is written to a temporary name in the same directory and renamed into place, so a reader never sees half a
file and two uploads of the same scan at once end with one whole file. When a file is deleted (replaced, its draft
purged, or orphaned) is `gateway.intake.files`' business.

When the directory cannot take the file, `store` says so as the answer the clerk gets: a full disk or quota is
507 Insufficient Storage, a read-only, unwritable or failing directory is 503 with ``Retry-After`` — in both
cases before the row that would reference the file is written (tests/drills/test_upload_drill.py).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Final

from gateway.privacy import FieldCipher
from gateway.problems import InsufficientStorage, ProblemError, ServiceUnavailable

log = logging.getLogger("onewindow.intake.uploads")

#: Signature -> media type, checked in order.
MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)
#: Bytes needed to recognise any accepted type.
SNIFF_BYTES: Final = max(len(m) for m, _ in MAGIC)
ACCEPTED_TYPES: Final = tuple(t for _, t in MAGIC)

#: Errors of a full file system, and of one that cannot be written now.
_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_UNWRITABLE: Final = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR})
#: Seconds a clerk is told to wait when the upload directory cannot be written.
RETRY_AFTER_SECONDS: Final = 30

UPLOADS_DIR: Final = "uploads"
#: Name prefix of a file being written (renamed into place when whole).
TEMP_PREFIX: Final = ".upload-"


def sniff(head: bytes) -> str | None:
    """The media type the leading bytes announce, or None when it is not an accepted type."""
    for magic, media_type in MAGIC:
        if head.startswith(magic):
            return media_type
    return None


def upload_path(data_dir: Path, sha256: str) -> Path:
    """Where the file with this SHA-256 (64 lower-case hex digits) lives."""
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256 hex digest")
    return data_dir / UPLOADS_DIR / sha256[:2] / sha256[2:4] / sha256


def _context(sha256: str) -> bytes:
    return b"upload:" + sha256.encode("ascii")


def read(data_dir: Path, sha256: str, *, cipher: FieldCipher) -> bytes | None:
    """The scan with this hash, opened; None when its file is gone or no longer opens to this hash (altered on disk,
    or sealed with a key the ring no longer holds). Blocking file I/O: call it through ``asyncio.to_thread``."""
    try:
        stored = upload_path(data_dir, sha256).read_bytes()
    except (OSError, ValueError):
        return None
    try:
        content = cipher.unseal(stored, context=_context(sha256))
    except ValueError:
        content = stored  # written before scans were sealed: the plain scan, if its hash still matches
    return content if hashlib.sha256(content).hexdigest() == sha256 else None


#: How `key_usage` counts a file from before scans were sealed.
PLAIN: Final = "plain"


def _stored_files(data_dir: Path) -> list[tuple[str, Path]]:
    """(sha256, path) of every stored scan (temporary files and strangers left out)."""
    root = data_dir / UPLOADS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("??/??/*"):
        name = path.name
        if len(name) == 64 and all(c in "0123456789abcdef" for c in name) and upload_path(data_dir, name) == path:
            found.append((name, path))
    return found


def key_usage(data_dir: Path) -> dict[str, int]:
    """How many stored scans each data key seals (`PLAIN`: files from before scans were sealed). Blocking."""
    usage: dict[str, int] = {}
    for _, path in _stored_files(data_dir):
        try:
            with path.open("rb") as fh:
                head = fh.read(258)
        except OSError:
            continue
        key_id = FieldCipher.sealed_key_id(head) or PLAIN
        usage[key_id] = usage.get(key_id, 0) + 1
    return usage


def reseal_all(data_dir: Path, cipher: FieldCipher) -> tuple[int, int]:
    """Seal every stored scan under the active data key (old keys and plain files alike), each file replaced
    atomically: ``(resealed, failed)`` — a file that does not open to its hash is left as it is and counted.
    Part of ``onewindow keys rotate``, so that ``keys retire`` never strands a scan. Blocking."""
    active = cipher.keyring.active_key_id
    resealed = failed = 0
    for digest, path in _stored_files(data_dir):
        try:
            stored = path.read_bytes()
        except OSError:
            continue  # deleted meanwhile
        if FieldCipher.sealed_key_id(stored) == active:
            continue
        content = read(data_dir, digest, cipher=cipher)
        if content is None:
            failed += 1
            continue
        _write_sealed(path, content, digest, cipher)
        resealed += 1
    return resealed, failed


def store(data_dir: Path, content: bytes, *, cipher: FieldCipher) -> tuple[str, bool]:
    """Store ``content`` sealed under its hash; returns ``(sha256, created)`` (False when it was already there).

    Blocking file I/O: call it through ``anyio.to_thread`` / ``asyncio.to_thread`` from request handlers. Raises
    `InsufficientStorage` (507) when the file system is full, `ServiceUnavailable` (503) when it cannot be written.
    """
    try:
        return _store(data_dir, content, cipher)
    except OSError as exc:
        problem = storage_problem(exc)
        if problem is None:
            raise
        log.error("cannot store an upload in %s: %s", data_dir / UPLOADS_DIR, os.strerror(exc.errno or 0))
        raise problem from None


def storage_problem(exc: OSError) -> ProblemError | None:
    """The answer for a file system that cannot take a file, or None for other errors."""
    if exc.errno in _FULL:
        return InsufficientStorage(
            "The upload storage is full; the file was not stored. Tell the operator; retry when space is freed.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if exc.errno in _UNWRITABLE:
        return ServiceUnavailable(
            "The upload storage cannot be written now; the file was not stored. Retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return None


def _store(data_dir: Path, content: bytes, cipher: FieldCipher) -> tuple[str, bool]:
    digest = hashlib.sha256(content).hexdigest()
    path = upload_path(data_dir, digest)
    if path.exists():
        # Refresh the time: the purge spares recently touched files, so it cannot race this upload's commit.
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
            return digest, False
    _write_sealed(path, content, digest, cipher)
    return digest, True


def _write_sealed(path: Path, content: bytes, digest: str, cipher: FieldCipher) -> None:
    """Write ``content`` sealed (bound to its hash) to ``path`` atomically: a synced temporary file, mode 0600,
    renamed over it; the temporary file removed when anything fails."""
    fd, tmp = _temporary_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(cipher.seal(content, context=_context(digest)))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _temporary_file(folder: Path) -> tuple[int, str]:
    """A new temporary file in ``folder``, creating the folder; again when a removal emptied and deleted it
    between the two steps."""
    for attempt in range(3):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def remove(data_dir: Path, sha256: str, *, older_than: float = 0.0) -> bool:
    """Delete a stored file the caller found unreferenced; True when a file was removed.

    ``older_than`` (seconds) spares a file written or re-uploaded since. Call it through `gateway.intake.files`,
    which decides under the file's lock that no row references it.
    """
    path = upload_path(data_dir, sha256)
    try:
        if older_than > 0 and time.time() - path.stat().st_mtime < older_than:
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    # Leave empty fan-out directories behind only when another file still needs them.
    for parent in (path.parent, path.parent.parent):
        try:
            parent.rmdir()
        except OSError:
            break
    return True


__all__ = [
    "ACCEPTED_TYPES",
    "MAGIC",
    "SNIFF_BYTES",
    "TEMP_PREFIX",
    "UPLOADS_DIR",
    "remove",
    "sniff",
    "store",
    "upload_path",
]
