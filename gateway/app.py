"""`create_app()`: the one place the application is wired — the context, routes, exception handlers, OpenAPI and
the lifespans."""

from __future__ import annotations

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute

from gateway.audit.lifespan import audit_lifespan
from gateway.bodies import GatewayRequest, check_body
from gateway.catalog.controllers import CatalogController, provide_catalog
from gateway.certificates.runtime import certificates_lifespan
from gateway.context import STATE_KEY, AppContext, provide_context
from gateway.departments.controllers import push_department_event
from gateway.events.controllers import SubscriptionController, event_stream, webhook_alerts
from gateway.events.jobs import events_lifespan
from gateway.events.stream import channels_plugin
from gateway.evidence.controllers import EvidenceController
from gateway.grid.controllers import GridController
from gateway.grid.deps import RECORDER_KEY
from gateway.health.controllers import live, ready
from gateway.identity.auth import (
    BEARER_SECURITY,
    auth_middleware,
    document_public_operations,
    provide_principal,
    security_components,
)
from gateway.identity.controllers import whoami
from gateway.identity.lifespan import identity_lifespan
from gateway.intake.controllers import (
    IntakeController,
    MaterialEvidenceController,
    PersonalDataController,
    upload_controller,
)
from gateway.intake.purge import draft_purge_lifespan
from gateway.lifecycle.controllers import ApplicationController, StatusEventController, SupervisionController
from gateway.observability.collectors import register_collectors
from gateway.observability.controllers import metrics
from gateway.observability.heap import heap_lifespan
from gateway.observability.logs import install_request_ids, logging_config
from gateway.observability.requests import observe
from gateway.openapi import RequestStructSchemaPlugin, document_common_responses
from gateway.outages import OUTAGE_AWARE_HANDLERS
from gateway.privacy import install_log_masking
from gateway.province.controllers import ProvinceController
from gateway.province.reporter import province_reporter_lifespan
from gateway.reports.controllers import ReportController
from gateway.reports.lifespan import report_workers_lifespan
from gateway.reports.schedule import background_jobs_lifespan
from gateway.settings import Settings, get_settings
from gateway.storage.lifespan import database_lifespan
from gateway.stores import idempotency_middleware, provide_idempotency
from gateway.stores.lifespan import idempotency_lifespan
from gateway.stores.openapi import document_idempotency
from gateway.tracking.collected import PaperEvaluations
from gateway.tracking.controllers import RectificationController, TrackingController
from gateway.tracking.lookup import install_public_lookup
from gateway.web.docs_ui import OfflineSwagger
from gateway.web.headers import security_headers_middleware
from gateway.web.lifespan import session_purge_lifespan
from gateway.web.rendering import template_config
from gateway.web.routes import web_router


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the gateway. ``settings`` defaults to the process-wide ones (file + environment)."""
    settings = settings or get_settings()
    install_log_masking()
    install_request_ids()
    context = AppContext.from_settings(settings)
    register_collectors(context)
    stores, cipher = context.stores, context.cipher
    idempotency = idempotency_middleware(
        stores.idempotency,
        ttl_seconds=settings.idempotency_ttl_seconds,
        upload_max_bytes=settings.upload_max_bytes,
        cipher=cipher,
        records=lambda: context.idempotency_records,
    )
    authentication = auth_middleware()
    app = Litestar(
        # One JSON object per line, with the request id (gateway/observability/logs.py).
        logging_config=logging_config(),
        route_handlers=[
            live,
            ready,
            metrics,
            # One router for the API: intake files cases (POST /applications) and the lifecycle lists them (GET on
            # the same path); Litestar 2 merges two controllers on one path only inside one router.
            Router(
                path="/",
                route_handlers=[
                    CatalogController,
                    whoami,
                    IntakeController,
                    upload_controller(settings),
                    ApplicationController,
                    PersonalDataController,
                    StatusEventController,
                    SupervisionController,
                    TrackingController,
                    RectificationController,
                    MaterialEvidenceController,
                    EvidenceController,
                    push_department_event,
                    ProvinceController,
                    SubscriptionController,
                    webhook_alerts,
                    event_stream,
                    GridController,
                    ReportController,
                ],
            ),
            # Pages: the citizen's status page, the staff console, static assets (gateway/web).
            web_router(),
        ],
        template_config=template_config(),
        exception_handlers=OUTAGE_AWARE_HANDLERS,
        # JSON bodies: declared media type, strict decoding into the operation's Struct (gateway/bodies.py).
        request_class=GatewayRequest,
        before_request=check_body,
        # Entered in order, left in reverse: the database first, then what needs it.
        lifespan=[
            database_lifespan,
            idempotency_lifespan,
            audit_lifespan,
            identity_lifespan,
            certificates_lifespan,
            draft_purge_lifespan,
            session_purge_lifespan,
            province_reporter_lifespan,
            events_lifespan,
            report_workers_lifespan,
            background_jobs_lifespan,
            # Last: everything start-up built is in the heap now.
            heap_lifespan,
        ],
        middleware=[security_headers_middleware, authentication, idempotency],
        stores=stores.registry,
        plugins=[RequestStructSchemaPlugin(), channels_plugin(context.redis, context.settings.redis_channel_prefix)],
        on_shutdown=[context.close],
        state=State({STATE_KEY: context, RECORDER_KEY: PaperEvaluations(context.calendar)}),
        dependencies={
            "context": Provide(provide_context, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "idempotency": Provide(provide_idempotency, sync_to_thread=False),
            "catalog": Provide(provide_catalog, sync_to_thread=False),
        },
        openapi_config=OpenAPIConfig(
            title="OneWindow (一窗通) gateway",
            version="1.0.0",
            description="One-window intake, case lifecycle, tracking and e-certificates for Yuhu District.",
            path="/schema",
            render_plugins=[JsonRenderPlugin(), OfflineSwagger()],
            components=[security_components()],
            security=BEARER_SECURITY,
        ),
        debug=False,
    )
    document_public_operations(app)
    document_idempotency(app)
    document_common_responses(app)
    _allow_every_method(app)
    # Correct public lookups answered ahead of the routing; these leave that route alone (GET, no body, no token).
    install_public_lookup(app, context, passing=[security_headers_middleware, authentication, idempotency, check_body])
    observe(app, trusted_proxies=context.trusted_proxies, access_log_enabled=settings.access_log)
    return app


def _allow_every_method(app: Litestar) -> None:
    """``OPTIONS`` answers ``Allow`` with every method of its path.

    When Litestar merges a second controller into a path (the intake's POST and the lifecycle's GET on
    ``/api/v1/applications``), the merged route keeps the OPTIONS handler made for the first one, and that handler
    reads the methods of the route it was made for. Point each OPTIONS handler at the route that holds it now.
    """
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.handler_name != "options_handler":
                continue
            for cell in getattr(handler.fn, "__closure__", None) or ():
                if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                    cell.cell_contents = route
