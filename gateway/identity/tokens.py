"""Opaque bearer tokens: ``ow_`` + 43 URL-safe random characters (256 bits), stored only as SHA-256 hashes.

A token is printed once when created; the database keeps its hash, role and binding. A fast hash is right
here: the token is random with 256 bits of entropy, so there is nothing to brute-force that a slow hash would
protect (passwords are another matter).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row

from catalog.catalog import Catalog
from gateway import audit
from gateway.identity.principal import SCOPE_PATTERN, Principal, Role
from gateway.identity.tables import tokens
from gateway.problems import FieldError, NotFound, Unprocessable
from gateway.storage.database import Database, locked
from gateway.storage.metadata import new_id, utcnow

TOKEN_PREFIX = "ow_"  # noqa: S105 - a recognisable prefix, not a secret
_TOKEN_BODY = re.compile(r"^ow_[A-Za-z0-9_-]{43}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

#: Optional check of a unit or department code against the catalog registry (True when the code exists).
CodeCheck = Callable[[str], bool]


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A stored token, without its secret."""

    id: str
    role: Role
    unit: str | None
    department: str | None
    scopes: tuple[str, ...]
    label: str | None
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(
            token_id=self.id,
            role=self.role,
            unit=self.unit,
            department=self.department,
            scopes=self.scopes,
            label=self.label,
        )


def generate_token() -> str:
    """A new random bearer token with the recognisable ``ow_`` prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a token: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


#: A grid (网格) code: its community's 12-digit code and a 3-digit number (config/registry/units.toml).
_GRID_CODE = re.compile(r"^[0-9]{15}$")


def looks_like_token(token: str) -> bool:
    """Cheap shape check before any database lookup."""
    return _TOKEN_BODY.match(token) is not None


def validate_binding(
    *,
    role: str,
    unit: str | None,
    department: str | None,
    scopes: Iterable[str],
    label: str | None,
    unit_exists: CodeCheck | None = None,
    department_exists: CodeCheck | None = None,
) -> tuple[Role, tuple[str, ...]]:
    """Check a token's role and binding; raise `Unprocessable` naming every bad field."""
    errors: list[FieldError] = []
    scope_list = tuple(dict.fromkeys(scopes))  # de-duplicated, order kept
    try:
        parsed = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise Unprocessable(
            f"Unknown role {role!r}.", errors=[FieldError("role", f"must be one of: {allowed}")]
        ) from None
    for field, value, needed, exists in (
        ("unit", unit, parsed in (Role.CLERK, Role.GRID_WORKER), unit_exists),
        ("department", department, parsed in (Role.OFFICER, Role.DEPARTMENT), department_exists),
    ):
        if value is None or value == "":
            if needed:
                errors.append(FieldError(field, f"a {parsed.value} token must be bound to a {field} code"))
            continue
        if field == "unit" and parsed is Role.SUPERVISOR:
            pass  # optional: a street's or community's supervisor
        elif not needed:
            errors.append(FieldError(field, f"a {parsed.value} token is not bound to a {field}; leave it out"))
            continue
        if not _CODE.match(value):
            errors.append(FieldError(field, "use letters, digits, '.', '_' or '-' (at most 64)"))
        elif field == "unit" and (parsed is Role.GRID_WORKER) != bool(_GRID_CODE.match(value)):
            errors.append(
                FieldError(field, "a grid worker is bound to a grid (网格) code of 15 digits")
                if parsed is Role.GRID_WORKER
                else FieldError(field, f"a {parsed.value} is bound to a street or community, not a grid")
            )
        elif exists is not None and not exists(value):
            errors.append(FieldError(field, f"{value!r} is not a known {field} code in the catalog"))
    if parsed is Role.SYSTEM:
        if not scope_list:
            errors.append(FieldError("scopes", "a system token needs at least one scope, e.g. status:read"))
        for scope in scope_list:
            if not SCOPE_PATTERN.match(scope):
                errors.append(FieldError("scopes", f"{scope!r} is not a scope; use resource:verb, e.g. status:read"))
    elif scope_list:
        errors.append(FieldError("scopes", f"only system tokens carry scopes; the {parsed.value} role decides"))
    if label is not None and len(label) > 200:
        errors.append(FieldError("label", "at most 200 characters"))
    if errors:
        raise Unprocessable("The token's role and binding do not fit together.", errors=errors)
    return parsed, scope_list


async def create_token(
    db: Database,
    *,
    role: str,
    unit: str | None = None,
    department: str | None = None,
    scopes: Iterable[str] = (),
    label: str | None = None,
    created_by: str = "system",
    unit_exists: CodeCheck | None = None,
    department_exists: CodeCheck | None = None,
) -> tuple[str, TokenRecord]:
    """Create a token; returns (the token — shown once, never stored —, its record). Audited as token.created."""
    parsed, scope_list = validate_binding(
        role=role,
        unit=unit,
        department=department,
        scopes=scopes,
        label=label,
        unit_exists=unit_exists,
        department_exists=department_exists,
    )
    token = generate_token()
    record = TokenRecord(
        id=new_id(),
        role=parsed,
        unit=unit or None,
        department=department or None,
        scopes=scope_list,
        label=label,
        created_at=utcnow(),
        created_by=created_by,
    )
    async with db.transaction() as conn:
        await conn.execute(
            insert(tokens).values(
                id=record.id,
                token_hash=hash_token(token),
                role=record.role.value,
                unit=record.unit,
                department=record.department,
                scopes=list(record.scopes),
                label=record.label,
                created_at=record.created_at,
                created_by=created_by,
            )
        )
        await audit.append(
            conn,
            actor=created_by,
            action="token.created",
            object_type="token",
            object_id=record.id,
            detail={
                "role": record.role.value,
                "unit": record.unit,
                "department": record.department,
                "scopes": list(record.scopes),
            },
        )
    return token, record


async def revoke_token(db: Database, token_id: str, *, revoked_by: str = "system") -> TokenRecord:
    """Revoke a token (idempotent: an already revoked token keeps its first revocation time).

    Of concurrent revocations exactly one writes the time and the ``token.revoked`` audit record; the others find
    the token revoked (its row is locked on PostgreSQL, and the update applies only to an unrevoked token) and
    answer that record.

    Raises `NotFound` for an unknown id. Other processes stop accepting it within their cache time.
    """
    async with db.transaction() as conn:
        row = (await conn.execute(locked(select(tokens).where(tokens.c.id == token_id), conn))).first()
        if row is None:
            raise NotFound(f"No token with id {token_id!r}.")
        if row.revoked_at is not None:
            return _record(row)
        now = utcnow()
        revoked = await conn.execute(
            update(tokens).where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        )
        if revoked.rowcount != 1:  # revoked meanwhile (the lock makes this a second line of defence)
            current = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).one()
            return _record(current)
        await audit.append(conn, actor=revoked_by, action="token.revoked", object_type="token", object_id=token_id)
        return msgspec.structs.replace(_record(row), revoked_at=now)


async def list_tokens(db: Database, *, include_revoked: bool = True) -> list[TokenRecord]:
    """Every token's record, oldest first."""
    query = select(tokens).order_by(tokens.c.created_at, tokens.c.id)
    if not include_revoked:
        query = query.where(tokens.c.revoked_at.is_(None))
    async with db.read() as conn:
        return [_record(r) for r in await conn.execute(query)]


async def get_token(db: Database, token_id: str) -> TokenRecord | None:
    async with db.read() as conn:
        row = (await conn.execute(select(tokens).where(tokens.c.id == token_id))).first()
    return None if row is None else _record(row)


async def principal_for_token(db: Database, token: str) -> Principal | None:
    """The principal of an active token, or None when it is malformed, unknown or revoked."""
    if not looks_like_token(token):
        return None
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(tokens).where(tokens.c.token_hash == hash_token(token), tokens.c.revoked_at.is_(None))
            )
        ).first()
    return None if row is None else _record(row).principal()


def _record(row: Row[Any]) -> TokenRecord:
    m = row._mapping
    return TokenRecord(
        id=m["id"],
        role=Role(m["role"]),
        unit=m["unit"],
        department=m["department"],
        scopes=tuple(m["scopes"] or ()),
        label=m["label"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        revoked_at=m["revoked_at"],
    )


def catalog_checks(catalog: Catalog) -> tuple[CodeCheck, CodeCheck]:
    """(unit_exists, department_exists) against the catalog registry: a clerk's or supervisor's unit must be a
    street or community (a window), a grid worker's a grid (`validate_binding` tells them apart by the code's
    shape); an officer's department must be a registered department."""

    def unit_exists(code: str) -> bool:
        unit = catalog.unit(code)
        return unit is not None and unit.level in ("street", "community", "grid")

    def department_exists(code: str) -> bool:
        return catalog.department(code) is not None

    return unit_exists, department_exists


def codes_check(codes: Collection[str]) -> CodeCheck:
    """A `CodeCheck` over a fixed collection of codes."""
    known = frozenset(codes)
    return known.__contains__


__all__ = [
    "TOKEN_PREFIX",
    "CodeCheck",
    "TokenRecord",
    "catalog_checks",
    "codes_check",
    "create_token",
    "generate_token",
    "get_token",
    "hash_token",
    "list_tokens",
    "looks_like_token",
    "principal_for_token",
    "revoke_token",
    "validate_binding",
]
