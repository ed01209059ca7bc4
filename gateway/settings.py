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
    #: Connections the gateway keeps open to the database, and how many more it may open under load (unset: the
    #: database's default — SQLite 5 + 10, PostgreSQL 10 + 20). Each process has its own pool.
    database_pool_size: int | None = None
    database_pool_overflow: int | None = None
    #: Seconds a request waits for a free connection before it answers 503 with Retry-After (no pile-up).
    database_pool_timeout_seconds: float = 10.0
    #: Sign an audit checkpoint after this many new audit records …
    audit_checkpoint_every: int = 1000
    #: … or this many seconds after the last one, whichever comes first (only when records were added).
    audit_checkpoint_seconds: float = 300.0
    #: A directory outside the database (other storage) that receives a copy of every signed audit checkpoint
    #: (`gateway.audit.witness`); empty: none. ``onewindow audit verify --witness DIR`` checks the log against it.
    audit_witness_dir: Path | None = None
    #: Audit records are kept at least this many days; the gateway never deletes one (the Cybersecurity Law,
    #: Art. 21, asks for six months of network logs). Values below `MIN_RETENTION_DAYS` are refused.
    audit_retention_days: int = 180
    #: Log files are kept at least this many days (the same floor); the operator's log rotation must honour it.
    log_retention_days: int = 180
    #: ``redis://…``; empty means in-memory stores (one process only).
    redis_url: str = ""
    #: Prefix of the live stream's Redis pub/sub channels. Pub/sub ignores the database number of the Redis URL, so
    #: deployments sharing one Redis server (a district's staging and production, say) need different prefixes.
    redis_channel_prefix: str = "onewindow"
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
    #: The staff console signs a session out after this many minutes without a request.
    console_idle_minutes: float = 30.0
    #: Report every case to the provincial platform (``config/province/platform.toml``) from serve and demo.
    province_reporting: bool = True
    #: Seconds between the provincial reporter's rounds.
    province_interval_seconds: float = 5.0
    #: The provincial platform's base URL instead of the file's (the demo's simulated platform); empty keeps it.
    province_url: str = ""
    #: ``GET /metrics`` answers clients in these networks (comma-separated addresses / CIDRs; the client as
    #: `gateway.clients` tells it, so behind a trusted proxy the proxy's client) without a token …
    metrics_networks: str = "127.0.0.0/8,::1"
    #: … and anyone sending ``Authorization: Bearer <metrics_token>`` (empty: no token opens it).
    metrics_token: str = ""
    #: One JSON access-log line per request (route template, status, duration, request id).
    access_log: bool = True
    #: Seconds between two runs of the draft purge across the deployment; 0: a quarter of the retention time
    #: (at least 60 s, at most an hour).
    draft_purge_interval_seconds: float = 0.0
    # -- events (gateway.events; docs/events.md) --
    #: Networks (comma-separated CIDRs) webhooks may go to besides public addresses; empty: public ones only.
    webhook_allowed_networks: str = ""
    #: Seconds one delivery attempt may take (connect, send, answer), and the most of the answer's body read.
    webhook_timeout_seconds: float = 10.0
    webhook_max_response_bytes: int = 64 * 1024
    #: Multiplies every retry interval, breaker period and the retry window (1: about three days of retries; the
    #: drills compress time with a small factor).
    webhook_time_scale: float = 1.0
    #: An endpoint failing this long raises an alert (audit record, API, metric).
    webhook_alert_after_seconds: float = 3600.0
    #: Consecutive failures that open an endpoint's breaker, and how long it stays open before one probe.
    webhook_breaker_failures: int = 5
    webhook_breaker_seconds: float = 60.0
    #: How long the previous secret still signs after a rotation, unless the rotation says otherwise.
    webhook_rotation_overlap_seconds: float = 24 * 3600.0
    #: Run the background jobs (event delivery) inside `serve` / `demo`; `onewindow worker` runs them alone.
    jobs_in_process: bool = True
    #: How often an idle dispatcher looks for new events and due retries.
    events_poll_seconds: float = 0.1
    #: Seconds between rounds of the grid task catch-up and the scheduled reports in this process; 0: off.
    report_jobs_seconds: float = 60.0
    #: Compute report figures in a child process of each serving process (`gateway.reports.workers`), so the
    #: serving event loop never carries them; off: in the serving process itself.
    reports_in_child_process: bool = True
    #: After start-up, freeze the start-up heap and collect young garbage less often (`gateway.observability.heap`).
    gc_settle: bool = True
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


#: The shortest retention the settings accept for logs and audit records: six months.
MIN_RETENTION_DAYS = 180


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
    if values.get("audit_witness_dir") == "":  # an empty variable means no witness
        del values["audit_witness_dir"]
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"settings: {exc}") from exc
    for name in ("audit_retention_days", "log_retention_days"):
        if getattr(settings, name) < MIN_RETENTION_DAYS:
            raise SettingsError(
                f"settings: {name} must be at least {MIN_RETENTION_DAYS} (logs and audit are kept six months)"
            )
    if settings.audit_witness_dir is not None:
        settings = msgspec.structs.replace(
            settings, audit_witness_dir=settings.audit_witness_dir.expanduser().resolve()
        )
    for name in ("trusted_proxies", "metrics_networks", "webhook_allowed_networks"):
        try:
            parse_networks(getattr(settings, name))
        except ValueError as exc:
            raise SettingsError(f"settings: {name}: {exc}") from None
    return msgspec.structs.replace(
        settings,
        data_dir=settings.data_dir.expanduser().resolve(),
        config_dir=settings.config_dir.expanduser().resolve(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
