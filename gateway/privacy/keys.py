"""The key ring: AES-256-GCM data keys (one active, the others kept to read older values) and one
HMAC-SHA256 blind-index key.

Where the keys come from, first match wins:

1. the environment — ``ONEWINDOW_DATA_KEYS="k2:<base64>,k1:<base64>"`` (the first is active) and
   ``ONEWINDOW_INDEX_KEY="<base64>"``; both or neither, and then nothing is read from or written to disk;
2. ``<data_dir>/keys/keyring.json`` (directory 0700, file 0600), created with fresh random keys on first run.

Exceptions::

    KeyRingError            keys missing, malformed, weak, unreadable or too widely readable; says what to do
    └── UnknownKeyError     a value names a key id the ring does not hold

The blind-index key is never rotated: every stored index would have to be recomputed from plaintext. Data
keys rotate (`KeyRing.add_data_key`, `onewindow keys rotate`); a running gateway notices a rewritten key file
within `REFRESH_SECONDS` (and at once when it meets a key id it does not know).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import fcntl
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
KEYS_DIR = "keys"
KEYS_FILE = "keyring.json"
FILE_FORMAT = "onewindow-keyring/1"
ENV_DATA_KEYS = "ONEWINDOW_DATA_KEYS"
ENV_INDEX_KEY = "ONEWINDOW_INDEX_KEY"
#: How often (seconds) a file-backed ring checks whether the key file was rewritten by `keys rotate`.
REFRESH_SECONDS = 2.0
#: A random 32-byte key has ~31 distinct byte values; fewer than this means a pattern, not randomness.
_MIN_DISTINCT_BYTES = 16
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_HOW_TO_GENERATE = "generate one with `onewindow keys generate`"

KeySource = Literal["file", "environment", "memory"]


class KeyRingError(ValueError):
    """The keys are missing, malformed, weak or unreadable; the message names the source and what to do."""


class UnknownKeyError(KeyRingError):
    """A stored value names a data key id that the ring does not hold."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"data key {key_id!r} is not in the key ring")
        self.key_id = key_id


def generate_key() -> bytes:
    """A fresh random 32-byte key."""
    return secrets.token_bytes(KEY_BYTES)


def encode_key(material: bytes) -> str:
    return base64.b64encode(material).decode("ascii")


def check_key_material(material: bytes, what: str) -> bytes:
    """Refuse keys of the wrong length or with the look of a pattern (all zeros, repeated text, …)."""
    if len(material) != KEY_BYTES:
        raise KeyRingError(f"{what}: must be {KEY_BYTES} bytes (base64 of 32 random bytes), got {len(material)}; "
                           f"{_HOW_TO_GENERATE}")  # fmt: skip
    if len(set(material)) < _MIN_DISTINCT_BYTES:
        raise KeyRingError(f"{what}: too weak (only {len(set(material))} distinct byte values; not random); "
                           f"{_HOW_TO_GENERATE}")  # fmt: skip
    return material


def decode_key(text: str, what: str) -> bytes:
    """Decode a base64 (standard or URL-safe, padding optional) key and check its strength."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        material = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{what}: not valid base64; {_HOW_TO_GENERATE}") from None
    return check_key_material(material, what)


def check_key_id(key_id: str, what: str) -> str:
    if not _KEY_ID_RE.match(key_id):
        raise KeyRingError(f"{what}: key id {key_id!r} must be 1-32 letters, digits, '-' or '_'")
    return key_id


@dataclass(frozen=True, repr=False)
class _Snapshot:
    """One consistent view of the keys; replaced whole when the key file changes."""

    active: str
    order: tuple[str, ...]
    aeads: dict[str, AESGCM]
    material: dict[str, bytes]
    created: dict[str, str]
    index_key: bytes
    file_stamp: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"<key snapshot active={self.active} keys={list(self.order)}>"


def _snapshot(
    data_keys: Sequence[tuple[str, bytes]],
    index_key: bytes,
    *,
    what: str,
    created: Mapping[str, str] | None = None,
    active: str | None = None,
    file_stamp: tuple[int, int, int] | None = None,
) -> _Snapshot:
    if not data_keys:
        raise KeyRingError(f"{what}: no data keys; {_HOW_TO_GENERATE}")
    seen_ids: set[str] = set()
    seen_material: set[bytes] = set()
    for key_id, material in data_keys:
        check_key_id(key_id, what)
        check_key_material(material, f"{what}: data key {key_id}")
        if key_id in seen_ids:
            raise KeyRingError(f"{what}: data key id {key_id!r} appears twice")
        if material in seen_material:
            raise KeyRingError(f"{what}: data key {key_id!r} repeats the material of another key")
        seen_ids.add(key_id)
        seen_material.add(material)
    check_key_material(index_key, f"{what}: index key")
    if index_key in seen_material:
        raise KeyRingError(f"{what}: the index key must differ from every data key")
    order = tuple(key_id for key_id, _ in data_keys)
    active = active or order[0]
    if active not in seen_ids:
        raise KeyRingError(f"{what}: active key {active!r} is not among the data keys {list(order)}")
    material_by_id = dict(data_keys)
    return _Snapshot(
        active=active,
        order=order,
        aeads={key_id: AESGCM(material) for key_id, material in data_keys},
        material=material_by_id,
        created=dict(created or {}),
        index_key=index_key,
        file_stamp=file_stamp,
    )


@dataclass(repr=False)
class KeyRing:
    """AES-256-GCM data keys by id (one active) and the blind-index key. Thread-safe; never prints secrets."""

    _snap: _Snapshot
    source: KeySource = "memory"
    path: Path | None = None
    _next_check: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- construction ---------------------------------------------------------------------------------

    @classmethod
    def from_keys(cls, data_keys: Sequence[tuple[str, bytes]], index_key: bytes) -> KeyRing:
        """An in-memory ring (tests, tools); the first data key is active."""
        return cls(_snapshot(data_keys, index_key, what="key ring"), source="memory")

    @classmethod
    def generate(cls, key_id: str = "k1") -> KeyRing:
        """A fresh in-memory ring with one data key."""
        return cls.from_keys([(key_id, generate_key())], generate_key())

    @classmethod
    def load(cls, data_dir: Path, environ: Mapping[str, str] | None = None, *, create: bool = True) -> KeyRing:
        """Keys from the environment if set there, else from ``<data_dir>/keys/keyring.json`` (created on first
        run when ``create``). Raises `KeyRingError` naming the problem."""
        env = os.environ if environ is None else environ
        from_env = cls.from_environment(env)
        if from_env is not None:
            return from_env
        path = Path(data_dir) / KEYS_DIR / KEYS_FILE
        if not path.exists():
            if not create:
                raise KeyRingError(f"{path}: no key file (run `onewindow serve` once, or set {ENV_DATA_KEYS})")
            _create_key_file(path)
        return cls(_read_key_file(path), source="file", path=path, _next_check=time.monotonic() + REFRESH_SECONDS)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> KeyRing | None:
        """The ring described by ``ONEWINDOW_DATA_KEYS`` + ``ONEWINDOW_INDEX_KEY``, or ``None`` if neither is set."""
        raw_data = environ.get(ENV_DATA_KEYS, "").strip()
        raw_index = environ.get(ENV_INDEX_KEY, "").strip()
        if not raw_data and not raw_index:
            return None
        if not raw_data or not raw_index:
            missing = ENV_DATA_KEYS if not raw_data else ENV_INDEX_KEY
            raise KeyRingError(f"{missing} is not set: set both {ENV_DATA_KEYS} and {ENV_INDEX_KEY}, or neither")
        data_keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(raw_data.split(","), start=1):
            entry = item.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyRingError(
                    f"{ENV_DATA_KEYS}: entry {position} must look like 'k1:<base64 key>' (key id, colon, key)"
                )
            key_id = check_key_id(key_id.strip(), ENV_DATA_KEYS)
            data_keys.append((key_id, decode_key(encoded, f"{ENV_DATA_KEYS}: data key {key_id}")))
        index_key = decode_key(raw_index, ENV_INDEX_KEY)
        return cls(_snapshot(data_keys, index_key, what=ENV_DATA_KEYS), source="environment")

    # --- reading --------------------------------------------------------------------------------------

    @property
    def snapshot(self) -> _Snapshot:
        """The current keys, re-read from the key file at most every `REFRESH_SECONDS`."""
        if self.path is not None and time.monotonic() >= self._next_check:
            self.refresh()
        return self._snap

    @property
    def active_key_id(self) -> str:
        return self.snapshot.active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every data key id, the active one first."""
        snap = self.snapshot
        return (snap.active, *(k for k in snap.order if k != snap.active))

    @property
    def index_key(self) -> bytes:
        return self.snapshot.index_key

    def created_at(self, key_id: str) -> str | None:
        return self.snapshot.created.get(key_id)

    def active_aead(self) -> tuple[str, AESGCM]:
        snap = self.snapshot
        return snap.active, snap.aeads[snap.active]

    def aead(self, key_id: str) -> AESGCM:
        """The cipher for ``key_id``; re-reads the key file once if the id is unknown (a rotation elsewhere)."""
        aead = self.snapshot.aeads.get(key_id)
        if aead is None and self.path is not None:
            self.refresh(force=True)
            aead = self._snap.aeads.get(key_id)
        if aead is None:
            raise UnknownKeyError(key_id)
        return aead

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the key file if it changed; ``True`` when new keys were loaded. A broken file keeps the old keys
        (the error surfaces at the next start)."""
        if self.path is None:
            return False
        with self._lock:
            self._next_check = time.monotonic() + REFRESH_SECONDS
            try:
                stamp = _stamp(self.path)
            except OSError:
                return False
            if stamp == self._snap.file_stamp and not force:
                return False
            try:
                snap = _read_key_file(self.path)
            except KeyRingError:
                return False
            changed = snap.material != self._snap.material or snap.active != self._snap.active
            self._snap = snap
            return changed

    # --- changing (file-backed rings only) ----------------------------------------------------------

    def add_data_key(self, key_id: str | None = None) -> str:
        """Create a new data key, make it active and write the key file; the old keys stay for reading."""
        path = self._writable_path("add a data key")
        with _file_lock(path), self._lock:
            snap = _read_key_file(path)
            new_id = check_key_id(key_id, str(path)) if key_id else _next_key_id(snap.order)
            if new_id in snap.material:
                raise KeyRingError(f"{path}: data key {new_id!r} already exists")
            keys = [(new_id, generate_key()), *((k, snap.material[k]) for k in snap.order)]
            created = {**snap.created, new_id: _now()}
            _write_key_file(path, keys, snap.index_key, created=created, active=new_id, replace=True)
            self._snap = _read_key_file(path)
        return new_id

    def remove_data_key(self, key_id: str) -> None:
        """Drop a retired data key (only after nothing is encrypted with it any more; the caller checks)."""
        path = self._writable_path("remove a data key")
        with _file_lock(path), self._lock:
            snap = _read_key_file(path)
            if key_id not in snap.material:
                raise UnknownKeyError(key_id)
            if key_id == snap.active:
                raise KeyRingError(f"{path}: {key_id!r} is the active key; rotate first")
            keys = [(k, snap.material[k]) for k in snap.order if k != key_id]
            created = {k: v for k, v in snap.created.items() if k != key_id}
            _write_key_file(path, keys, snap.index_key, created=created, active=snap.active, replace=True)
            self._snap = _read_key_file(path)

    def _writable_path(self, action: str) -> Path:
        if self.source == "environment":
            raise KeyRingError(
                f"cannot {action}: keys come from {ENV_DATA_KEYS}; put the new key first in that variable "
                "on every gateway process (see `onewindow keys generate`)"
            )
        if self.path is None:
            raise KeyRingError(f"cannot {action}: this key ring has no key file")
        return self.path

    def __repr__(self) -> str:
        return f"KeyRing(source={self.source!r}, active={self._snap.active!r}, keys={list(self._snap.order)!r})"


# --- the key file ------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def _next_key_id(existing: Sequence[str]) -> str:
    numbers = [int(k[1:]) for k in existing if k.startswith("k") and k[1:].isdigit()]
    candidate = max(numbers, default=0) + 1
    while f"k{candidate}" in existing:
        candidate += 1
    return f"k{candidate}"


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _ensure_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        # We made it, or an operator did: the key directory is ours alone either way.
        os.chmod(directory, 0o700)


def _create_key_file(path: Path) -> None:
    """First run: fresh keys, written so that two processes starting together agree on one file."""
    _ensure_dir(path.parent)
    keys = [("k1", generate_key())]
    _write_key_file(path, keys, generate_key(), created={"k1": _now()}, active="k1", replace=False)


def _write_key_file(
    path: Path,
    data_keys: Sequence[tuple[str, bytes]],
    index_key: bytes,
    *,
    created: Mapping[str, str],
    active: str,
    replace: bool,
) -> None:
    document = {
        "format": FILE_FORMAT,
        "active": active,
        "data_keys": [{"id": k, "key": encode_key(m), "created": created.get(k, "")} for k, m in data_keys],
        "index_key": encode_key(index_key),
    }
    payload = json.dumps(document, indent=2).encode("utf-8") + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):  # another process created it first: theirs wins
                os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read_key_file(path: Path) -> _Snapshot:
    what = str(path)
    try:
        stamp = _stamp(path)
        mode = path.stat().st_mode & 0o777
        raw = path.read_bytes()
    except OSError as exc:
        raise KeyRingError(f"{what}: cannot read the key file: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyRingError(f"{what}: mode {mode:04o} lets others read the keys; run `chmod 600 {path}`")
    try:
        document: Any = json.loads(raw)
    except ValueError:
        raise KeyRingError(f"{what}: not valid JSON (restore it from backup)") from None
    if not isinstance(document, dict) or document.get("format") != FILE_FORMAT:
        raise KeyRingError(f"{what}: not a OneWindow key file (expected format {FILE_FORMAT!r})")
    entries = document.get("data_keys")
    if not isinstance(entries, list):
        raise KeyRingError(f"{what}: 'data_keys' must be a list")
    data_keys: list[tuple[str, bytes]] = []
    created: dict[str, str] = {}
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("key"), str):
            raise KeyRingError(f"{what}: data key {position} must have string 'id' and 'key'")
        key_id = check_key_id(entry["id"], what)
        data_keys.append((key_id, decode_key(entry["key"], f"{what}: data key {key_id}")))
        created[key_id] = str(entry.get("created") or "")
    index = document.get("index_key")
    if not isinstance(index, str):
        raise KeyRingError(f"{what}: 'index_key' is missing")
    active = document.get("active")
    if not isinstance(active, str):
        raise KeyRingError(f"{what}: 'active' is missing")
    return _snapshot(
        data_keys,
        decode_key(index, f"{what}: index key"),
        what=what,
        created=created,
        active=active,
        file_stamp=stamp,
    )


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise key-file changes between processes (two `keys rotate` at once)."""
    lock_path = path.with_name(".keyring.lock")
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


__all__ = [
    "ENV_DATA_KEYS",
    "ENV_INDEX_KEY",
    "KEY_BYTES",
    "KeyRing",
    "KeyRingError",
    "UnknownKeyError",
    "check_key_material",
    "decode_key",
    "encode_key",
    "generate_key",
]
