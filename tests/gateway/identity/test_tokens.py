"""Tokens: format and hashing (unit), binding rules (unit), and create/list/revoke/resolve on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import re

import pytest
from sqlalchemy import select

from catalog.loader import cached_catalog
from gateway import audit
from gateway.audit.tables import audit_records
from gateway.identity import Principal, Role, create_token, list_tokens, principal_for_token, revoke_token
from gateway.identity.tables import tokens
from gateway.identity.tokens import (
    catalog_checks,
    codes_check,
    generate_token,
    get_token,
    hash_token,
    looks_like_token,
    validate_binding,
)
from gateway.problems import NotFound, Unprocessable
from gateway.settings import DEFAULT_CONFIG_DIR, Settings
from gateway.storage import Database


def test_tokens_are_prefixed_random_and_hashed_with_sha256() -> None:
    made = {generate_token() for _ in range(200)}
    assert len(made) == 200
    for token in made:
        assert re.fullmatch(r"ow_[A-Za-z0-9_-]{43}", token) and looks_like_token(token)
    token = next(iter(made))
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert not looks_like_token("Bearer ow_x") and not looks_like_token(token + "x")


def _errors(**kwargs: object) -> dict[str, str]:
    defaults: dict[str, object] = {"unit": None, "department": None, "scopes": (), "label": None}
    with pytest.raises(Unprocessable) as info:
        validate_binding(**{**defaults, **kwargs})  # type: ignore[arg-type]
    return {e.field: e.message for e in info.value.errors or []}


def test_binding_rules_per_role() -> None:
    assert "role" in _errors(role="mayor")
    assert "unit" in _errors(role="clerk")
    assert "department" in _errors(role="officer")
    assert set(_errors(role="clerk", unit="430302001000", department="civil_affairs")) == {"department"}
    assert set(_errors(role="officer", department="civil_affairs", unit="x")) == {"unit"}
    # A supervisor may be bound to a street or community (what lies under it), not to a grid; a grid worker to a grid.
    assert validate_binding(role="supervisor", unit="430302001000", department=None, scopes=(), label=None)[0] is (
        Role.SUPERVISOR
    )
    assert set(_errors(role="supervisor", unit="430302001001001")) == {"unit"}
    assert set(_errors(role="grid_worker", unit="430302001001")) == {"unit"}
    assert validate_binding(role="grid_worker", unit="430302001001001", department=None, scopes=(), label=None)[0] is (
        Role.GRID_WORKER
    )
    assert "scopes" in _errors(role="system")
    assert "scopes" in _errors(role="system", scopes=["Status Read"])
    assert "scopes" in _errors(role="admin", scopes=["status:read"])
    assert "unit" in _errors(role="clerk", unit="bad code!")
    assert "label" in _errors(role="admin", label="x" * 201)
    assert "unit" in _errors(role="clerk", unit="999", unit_exists=codes_check({"1"}))
    role, scopes = validate_binding(
        role="system", unit=None, department=None, scopes=["status:read", "status:read", "x:y"], label=None
    )
    assert role is Role.SYSTEM and scopes == ("status:read", "x:y")


def test_catalog_checks_accept_windows_and_departments_only() -> None:
    catalog = cached_catalog(DEFAULT_CONFIG_DIR)
    unit_exists, department_exists = catalog_checks(catalog)
    street = catalog.units_at("street")[0].code
    community = catalog.units_at("community")[0].code
    assert unit_exists(street) and unit_exists(community)
    assert unit_exists(catalog.units_at("grid")[0].code)  # a grid worker's binding
    assert not unit_exists("430302999999")
    assert department_exists(catalog.departments[0].code) and not department_exists("nowhere")


async def test_create_resolve_list_and_revoke(database: Database) -> None:
    token, record = await create_token(database, role="clerk", unit="430302001000", label="窗口 1", created_by="cli:t")
    assert record.role is Role.CLERK and record.unit == "430302001000" and record.active
    async with database.read() as conn:
        stored = (await conn.execute(select(tokens))).one()
        assert stored.token_hash == hash_token(token) and token not in str(tuple(stored))
        created = await audit.history(conn, object_type="token", object_id=record.id)
    assert [(r.action, r.actor) for r in created] == [("token.created", "cli:t")]

    principal = await principal_for_token(database, token)
    assert principal == Principal(
        token_id=record.id, role=Role.CLERK, unit="430302001000", department=None, scopes=(), label="窗口 1"
    )
    assert await principal_for_token(database, generate_token()) is None
    assert await principal_for_token(database, "not-a-token") is None

    _, system = await create_token(database, role="system", scopes=["status:read"])
    assert [t.id for t in await list_tokens(database)] == [record.id, system.id]

    revoked = await revoke_token(database, record.id, revoked_by="cli:t")
    assert revoked.revoked_at is not None and not revoked.active
    assert (await revoke_token(database, record.id)).revoked_at == revoked.revoked_at  # idempotent
    assert await principal_for_token(database, token) is None
    assert [t.id for t in await list_tokens(database, include_revoked=False)] == [system.id]
    fetched = await get_token(database, record.id)
    assert fetched is not None and fetched.revoked_at == revoked.revoked_at
    with pytest.raises(NotFound):
        await revoke_token(database, "0" * 32)
    async with database.read() as conn:
        actions = [r for (r,) in await conn.execute(select(audit_records.c.action).order_by(audit_records.c.seq))]
    assert actions == ["token.created", "token.created", "token.revoked"]


async def test_concurrent_revocations_revoke_once(db_settings: Settings, database: Database) -> None:
    """Twenty revocations at once from four `Database` objects (four processes' connections): one records the
    time and the audit record; every caller gets that same revocation."""
    _, record = await create_token(database, role="supervisor")
    others = [Database.from_settings(db_settings) for _ in range(3)]
    pool = [database, *others]
    try:
        results = await asyncio.gather(
            *(revoke_token(pool[i % len(pool)], record.id, revoked_by=f"cli:admin{i}") for i in range(20))
        )
    finally:
        for db in others:
            await db.dispose()
    times = {r.revoked_at for r in results}
    assert len(times) == 1 and None not in times
    stored = await get_token(database, record.id)
    assert stored is not None and stored.revoked_at in times
    async with database.read() as conn:
        revocations = list(await conn.execute(select(audit_records).where(audit_records.c.action == "token.revoked")))
    assert len(revocations) == 1 and revocations[0].object_id == record.id


async def test_invalid_binding_writes_nothing(database: Database) -> None:
    with pytest.raises(Unprocessable):
        await create_token(database, role="officer")
    async with database.read() as conn:
        assert (await conn.execute(select(tokens))).all() == []
        assert (await conn.execute(select(audit_records))).all() == []


def test_command_line_offers_every_role() -> None:
    from gateway.commands.tokens import ROLES

    assert tuple(r.value for r in Role) == ROLES
