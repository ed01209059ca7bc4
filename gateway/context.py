"""`AppContext`: what one gateway process holds for its lifetime, typed — instead of an untyped state bag.

`create_app` builds it from the settings (keys, catalog, calendar, the one Redis client, stores, the tracking
failure limiter, the trusted proxies) and puts it on the application; the lifespans then fill in what needs the
event loop, in order:

    database_lifespan      context.database          (migrated)
    idempotency_lifespan   context.idempotency_records (the durable idempotency records, purged periodically)
    audit_lifespan         context.audit_signer      (and the checkpoint task)
    identity_lifespan      context.authenticator
    certificates_lifespan  context.connectors, context.certificate_store, context.certificates
    report_workers_lifespan context.report_workers (the report child, started on first use)

Route handlers and dependency providers read it with ``context_of(request.app)``; each domain's ``deps.py`` builds
its services from it. Readiness checks register themselves in ``context.readiness``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from litestar import Litestar
from litestar.datastructures import State

from catalog.calendar import WorkingCalendar, cached_calendar
from catalog.catalog import Catalog
from catalog.loader import cached_catalog
from gateway.clients import TrustedProxies
from gateway.health.checks import Check, ReadinessCheck
from gateway.observability.access import MetricsAccess
from gateway.observability.metrics import Metrics
from gateway.privacy import FieldCipher, KeyRing
from gateway.settings import Settings
from gateway.stores import FailureLimiter, Stores, build_stores, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from connectors.client import ConnectorPool
    from gateway.audit.keys import AuditSigner
    from gateway.certificates.lookup import CertificateService
    from gateway.certificates.store import CertificateStore
    from gateway.identity.authenticator import TokenAuthenticator
    from gateway.reports.workers import ReportWorkers
    from gateway.storage import Database
    from gateway.stores.records import IdempotencyRecords

T = TypeVar("T")

#: Where the context lives on the Litestar application (``app.state``).
STATE_KEY = "context"


class NotStarted(RuntimeError):
    """A part of the context that a lifespan provides was used before that lifespan ran."""


class SetByLifespan(Generic[T]):
    """An attribute a lifespan sets: reading it before then raises `NotStarted` naming that lifespan."""

    def __init__(self, lifespan: str) -> None:
        self.lifespan = lifespan
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: object, owner: type | None = None) -> T:
        try:
            value: T = instance.__dict__[self.name]
        except KeyError:
            raise NotStarted(f"{self.name} is set by {self.lifespan}, which has not run") from None
        return value

    def __set__(self, instance: object, value: T) -> None:
        instance.__dict__[self.name] = value


class AppContext:
    """The process's parts (a plain class, not a dataclass or Struct: Litestar hands it to dependency providers and
    must not try to convert it)."""

    database: SetByLifespan[Database] = SetByLifespan("database_lifespan")
    authenticator: SetByLifespan[TokenAuthenticator] = SetByLifespan("identity_lifespan")
    audit_signer: SetByLifespan[AuditSigner] = SetByLifespan("audit_lifespan")

    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        calendar: WorkingCalendar,
        keyring: KeyRing,
        cipher: FieldCipher,
        stores: Stores,
        tracking_limiter: FailureLimiter,
        trusted_proxies: TrustedProxies | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.calendar = calendar
        self.keyring = keyring
        self.cipher = cipher
        #: The idempotency and rate-limit stores; ``stores.redis`` is the process's one Redis client (or None).
        self.stores = stores
        self.tracking_limiter = tracking_limiter
        #: Whose ``X-Forwarded-For`` names the client (``Settings.trusted_proxies``; none by default).
        self.trusted_proxies = trusted_proxies or TrustedProxies()
        #: name -> check, shown by ``GET /health/ready``.
        self.readiness: dict[str, ReadinessCheck] = {}
        #: Scrape-time metric collectors (``metrics.add_collector``) and who may read ``GET /metrics``.
        self.metrics = Metrics()
        self.metrics_access = MetricsAccess(
            networks=settings.metrics_networks, token=settings.metrics_token, proxies=self.trusted_proxies
        )
        # Filled in by the lifespans (see the module docstring); `database`, `authenticator` and `audit_signer` are
        # `SetByLifespan` attributes of the class.
        #: The durable idempotency records (``None`` until idempotency_lifespan ran: the middleware then keeps
        #: answers in the fast store only).
        self.idempotency_records: IdempotencyRecords | None = None
        self.connectors: ConnectorPool | None = None
        self.certificate_store: CertificateStore | None = None
        #: The intake's certificate lookup; None when the certificates lifespan is not part of the app.
        self.certificates: CertificateService | None = None
        #: The process's report child (report_workers_lifespan); None: reports are computed in this process.
        self.report_workers: ReportWorkers | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        """Everything that needs no event loop: keys, catalog, calendar, the Redis client, stores, the limiter.

        Refuses to build — saying why — with malformed or weak keys, or a catalog with problems (`CatalogError`
        lists each), so `onewindow serve` does not start on them.
        """
        keyring = KeyRing.load(settings.data_dir)
        cipher = FieldCipher(keyring)
        catalog = cached_catalog(settings.config_dir)
        # One Redis client per process (bounded connect and call times), shared by the stores, the tracking
        # failure limiter and the connectors' circuit breakers.
        stores = build_stores(redis_client(settings.redis_url) if settings.redis_url else None)
        context = cls(
            settings=settings,
            catalog=catalog,
            calendar=cached_calendar(settings.config_dir),
            keyring=keyring,
            cipher=cipher,
            stores=stores,
            tracking_limiter=FailureLimiter(
                stores.rate_limit,
                limit=settings.tracking_failures_per_minute,
                hasher=lambda client: cipher.blind_index(client, kind="client_address"),
            ),
            trusted_proxies=TrustedProxies.parse(settings.trusted_proxies),
        )
        if stores.redis is not None:
            context.readiness["redis"] = stores.check
        else:
            context.readiness["stores"] = _memory_stores
        return context

    def install(self, app: Litestar) -> None:
        """Make this the context of ``app`` (`create_app` passes it as the app's state instead)."""
        app.state[STATE_KEY] = self

    @property
    def redis(self) -> Redis | None:
        return self.stores.redis

    async def close(self) -> None:
        """Release what the context itself opened (the Redis client, through the stores)."""
        await self.stores.close()


async def _memory_stores() -> Check:
    return Check(ok=True, critical=False, detail="memory (this process only: set redis_url for several processes)")


def context_of(app: Litestar) -> AppContext:
    """The application's context (set by `create_app`)."""
    context: AppContext = app.state[STATE_KEY]
    return context


def provide_context(state: State) -> AppContext:
    """Litestar dependency ``context``: each domain's providers (``deps.py``) take it."""
    context: AppContext = state[STATE_KEY]
    return context


__all__ = ["STATE_KEY", "AppContext", "NotStarted", "context_of", "provide_context"]
