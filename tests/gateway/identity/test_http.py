"""Bearer authentication, guards and OpenAPI through HTTP, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.di import Provide
from litestar.params import FromPath

from gateway.app import create_app
from gateway.context import AppContext, context_of
from gateway.identity import CurrentPrincipal, Role, TokenAuthenticator, create_token, require_roles, revoke_token
from gateway.identity.auth import auth_middleware, provide_principal
from gateway.problems import EXCEPTION_HANDLERS, NotFound
from gateway.settings import Settings
from gateway.storage import Database
from tests.dbutil import asgi_client

UNIT = "430302001000"


@get("/clerks", guards=[require_roles(Role.CLERK)], sync_to_thread=False)
def clerks_only(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"unit": principal.unit}


@get("/oversight", guards=[require_roles(Role.OFFICER, Role.SUPERVISOR)], sync_to_thread=False)
def oversight() -> dict[str, Any]:
    return {"ok": True}


@get("/status", guards=[require_roles(Role.SUPERVISOR, scope="status:read")], sync_to_thread=False)
def status() -> dict[str, Any]:
    return {"ok": True}


@get("/units/{code:str}", guards=[require_roles(Role.CLERK, Role.SUPERVISOR)], sync_to_thread=False)
def unit_object(code: FromPath[str], principal: CurrentPrincipal) -> dict[str, Any]:
    if not principal.can_see_unit(code):
        raise NotFound("No such application.")  # out of scope answers exactly like missing
    return {"code": code}


@get("/public", opt={"exclude_from_auth": True}, sync_to_thread=False)
def public() -> dict[str, Any]:
    return {"ok": True}


@pytest.fixture
async def client(database: Database, db_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = Litestar(
        route_handlers=[clerks_only, oversight, status, unit_object, public],
        middleware=[auth_middleware()],
        exception_handlers=EXCEPTION_HANDLERS,
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
    )
    context = AppContext.from_settings(db_settings)
    context.install(app)
    context.authenticator = TokenAuthenticator(database, cache_seconds=60)
    async with asgi_client(app) as c:
        yield c


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_malformed_and_unknown_tokens_answer_401(client: httpx.AsyncClient) -> None:
    for headers, error in [
        ({}, None),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_request"),
        ({"Authorization": "Bearer"}, "invalid_request"),
        (_bearer("ow_" + "A" * 43), "invalid_token"),
        (_bearer("nonsense"), "invalid_token"),
    ]:
        response = await client.get("/clerks", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"].startswith('Bearer realm="onewindow"')
        if error:
            assert f'error="{error}"' in response.headers["www-authenticate"]
        assert response.json()["status"] == 401 and "Traceback" not in response.text
    assert (await client.get("/public")).json() == {"ok": True}


async def test_roles_guard_operations(client: httpx.AsyncClient, database: Database) -> None:
    clerk, _ = await create_token(database, role="clerk", unit=UNIT)
    officer, _ = await create_token(database, role="officer", department="civil_affairs")
    supervisor, _ = await create_token(database, role="supervisor")
    system, _ = await create_token(database, role="system", scopes=["status:read"])
    other_system, _ = await create_token(database, role="system", scopes=["certificates:read"])

    response = await client.get("/clerks", headers=_bearer(clerk))
    assert response.status_code == 200 and response.json() == {"unit": UNIT}
    denied = await client.get("/clerks", headers=_bearer(officer))
    assert denied.status_code == 403 and denied.headers["content-type"].startswith("application/problem+json")
    assert "clerk" in denied.json()["detail"] and "officer" in denied.json()["detail"]
    assert (await client.get("/oversight", headers=_bearer(officer))).status_code == 200
    assert (await client.get("/oversight", headers=_bearer(supervisor))).status_code == 200
    assert (await client.get("/oversight", headers=_bearer(clerk))).status_code == 403
    assert (await client.get("/status", headers=_bearer(system))).status_code == 200
    assert (await client.get("/status", headers=_bearer(supervisor))).status_code == 200
    assert (await client.get("/status", headers=_bearer(other_system))).status_code == 403
    assert (await client.get("/status", headers=_bearer(clerk))).status_code == 403


async def test_out_of_scope_object_answers_404_like_a_missing_one(
    client: httpx.AsyncClient, database: Database
) -> None:
    clerk, _ = await create_token(database, role="clerk", unit=UNIT)
    assert (await client.get(f"/units/{UNIT}", headers=_bearer(clerk))).status_code == 200
    other = await client.get("/units/430302002000", headers=_bearer(clerk))
    assert other.status_code == 404 and other.json()["title"] == "Not found"


async def test_revocation_applies_after_forget_or_cache_expiry(client: httpx.AsyncClient, database: Database) -> None:
    token, record = await create_token(database, role="clerk", unit=UNIT)
    assert (await client.get("/clerks", headers=_bearer(token))).status_code == 200
    await revoke_token(database, record.id)
    authenticator: TokenAuthenticator = context_of(client._transport.app).authenticator  # type: ignore[attr-defined]
    assert (await client.get("/clerks", headers=_bearer(token))).status_code == 200  # cached for a moment
    authenticator.forget(record.id)
    assert (await client.get("/clerks", headers=_bearer(token))).status_code == 401


async def test_authenticator_cache_is_bounded(database: Database) -> None:
    authenticator = TokenAuthenticator(database, cache_seconds=60, max_entries=3)
    made = [await create_token(database, role="admin") for _ in range(5)]
    for token, record in made:
        principal = await authenticator.authenticate(token)
        assert principal is not None and principal.token_id == record.id
    assert len(authenticator._cache) <= 3


async def test_gateway_wiring_me_openapi_and_readiness(db_settings: Settings, database: Database) -> None:
    token, record = await create_token(database, role="officer", department="civil_affairs", label="民政 1")
    async with asgi_client(create_app(db_settings)) as client:
        assert (await client.get("/api/v1/me")).status_code == 401
        me = await client.get("/api/v1/me", headers=_bearer(token))
        assert me.status_code == 200
        assert me.json() == {
            "token_id": record.id,
            "role": "officer",
            "unit": None,
            "department": "civil_affairs",
            "scopes": [],
            "label": "民政 1",
        }
        ready = (await client.get("/health/ready")).json()
        assert ready["checks"]["database"] == {"ok": True, "critical": True, "detail": database.dialect}
        spec = (await client.get("/schema/openapi.json")).json()
        assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert spec["security"] == [{"bearer": []}]
        assert spec["paths"]["/health/ready"]["get"]["security"] == [{}]  # public: no token
        assert "security" not in spec["paths"]["/api/v1/me"]["get"]  # the document's default: bearer
