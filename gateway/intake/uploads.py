"""Uploaded scans: content sniffing and content-addressed storage under ``<data_dir>/uploads``.

The type of a file is what its first bytes say, never its name or the client's Content-Type: a PDF starts with
``%PDF-``, a JPEG with ``FF D8 FF``, a PNG with its 8-byte signature. Anything else is refused (415).

Files are stored once per content: ``uploads/ab/cd/<sha256>`` (the first two byte pairs of the hash fan the files
out over directories). A file is written to a temporary name in the same directory and renamed into place, so a
reader never sees half a file and two uploads of the same scan at once end with one whole file. When a file is
deleted (replaced, its draft purged, or orphaned) is `gateway.intake.files`' business.

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


def store(data_dir: Path, content: bytes) -> tuple[str, bool]:
    """Store ``content`` under its hash; returns ``(sha256, created)`` (False when it was already there).

    Blocking file I/O: call it through ``anyio.to_thread`` / ``asyncio.to_thread`` from request handlers. Raises
    `InsufficientStorage` (507) when the file system is full, `ServiceUnavailable` (503) when it cannot be written.
    """
    try:
        return _store(data_dir, content)
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


def _store(data_dir: Path, content: bytes) -> tuple[str, bool]:
    digest = hashlib.sha256(content).hexdigest()
    path = upload_path(data_dir, digest)
    if path.exists():
        # Refresh the time: the purge spares recently touched files, so it cannot race this upload's commit.
        with contextlib.suppress(FileNotFoundError):
            os.utime(path)
            return digest, False
    fd, tmp = _temporary_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return digest, True


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
