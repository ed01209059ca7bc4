"""Typed settings: defaults < TOML file (``--config`` or ``ONEWINDOW_CONFIG``) < ``ONEWINDOW_*`` variables.

One cached loader (`get_settings`) for the process; tests build `Settings` directly or call
`load_settings(...)` with explicit overrides.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec

from gateway.clients import parse_networks

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_DIR = REPO_ROOT / "config"


class Settings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Everything the gateway reads from its environment. Paths are absolute after loading."""

    data_dir: Path = Path("var")
    config_dir: Path = DEFAULT_CONFIG_DIR
    host: str = "127.0.0.1"
    port: int = 8000
    #: SQLAlchemy URL; empty means the embedded SQLite file ``<data_dir>/onewindow.sqlite3``.
    database_url: str = ""
    #: PostgreSQL only: the schema the gateway's tables live in (``search_path``); empty means the server's default.
    database_schema: str = ""
    #: Sign an audit checkpoint after this many new audit records …
    audit_checkpoint_every: int = 1000
    #: … or this many seconds after the last one, whichever comes first (only when records were added).
    audit_checkpoint_seconds: float = 300.0
    #: ``redis://…``; empty means in-memory stores (one process only).
    redis_url: str = ""
    #: Seconds a clerk's intake waits for live certificate pulls before answering with what it has.
    lookup_budget_seconds: float = 1.5
    #: A stored certificate older than this is pulled again at intake.
    certificate_max_age_hours: float = 24.0
    #: Drafts never submitted are purged after this many hours, with their uploads.
    draft_retention_hours: float = 72.0
    #: Largest accepted upload (bytes).
    upload_max_bytes: int = 10 * 1024 * 1024
    #: Failed public tracking lookups allowed per client address per minute.
    tracking_failures_per_minute: int = 10
    #: Reverse proxies (comma-separated IP addresses and CIDR networks) whose ``X-Forwarded-For`` names the client;
    #: empty: none — the connection's peer is the client, whatever the headers say (`gateway.clients`).
    trusted_proxies: str = ""
    #: Idempotency records are kept this long (seconds).
    idempotency_ttl_seconds: int = 24 * 3600
    #: Base URL the department connector configs are rebased onto (demo and tests); empty keeps each file's.
    simulator_base_host: str = ""
    #: Seconds between rounds of the grid task catch-up and the scheduled reports in this process; 0: off.
    report_jobs_seconds: float = 60.0
    debug: bool = False

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL, with the driver named (``postgresql://`` becomes ``+asyncpg``)."""
        url = self.database_url
        if not url:
            return f"sqlite+aiosqlite:///{self.data_dir / 'onewindow.sqlite3'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")


class SettingsError(ValueError):
    """The settings file or an ``ONEWINDOW_*`` variable is invalid; the message names it."""


_ENV_PREFIX = "ONEWINDOW_"
_FIELDS = {f.name: f for f in msgspec.structs.fields(Settings)}


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(_ENV_PREFIX):
            continue
        name = key[len(_ENV_PREFIX) :].lower()
        if name in _FIELDS:
            values[name] = raw
    return values


def _decode_path(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError


def load_settings(
    config_file: Path | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Build settings from defaults, an optional TOML file, the environment and explicit overrides."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    path = config_file or (Path(env["ONEWINDOW_CONFIG"]) if env.get("ONEWINDOW_CONFIG") else None)
    if path is not None:
        try:
            with path.open("rb") as fh:
                values.update(tomllib.load(fh).get("gateway", {}))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"{path}: {exc}") from exc
    values.update(_from_env(env))
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"settings: {exc}") from exc
    try:
        parse_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"settings: trusted_proxies: {exc}") from None
    return msgspec.structs.replace(
        settings,
        data_dir=settings.data_dir.expanduser().resolve(),
        config_dir=settings.config_dir.expanduser().resolve(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
