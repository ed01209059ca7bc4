"""Staff sessions of the console: a bearer token exchanged once for a session cookie.

The cookie holds a random secret; the database keeps only its SHA-256 (`gateway.web.tables.staff_sessions`), so
every gateway process — and a restarted one — knows the session, and a copy of the table signs nobody in. The
bearer token itself is kept encrypted on the row and authenticated again on each request (through the identity's
short cache): revoking the token ends its sessions at once.

A session ends when signed out, or after ``Settings.console_idle_minutes`` without a request (idle timeout); it
carries the CSRF token that every console form sends back. The query code of a case just accepted is parked on
the session, encrypted, until the receipt that prints it is first shown (`take_receipt` clears it in the same
conditional update, so two tabs cannot both print it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable

import msgspec
from sqlalchemy import delete, select, update

from gateway.identity.authenticator import TokenAuthenticator
from gateway.identity.principal import Principal
from gateway.privacy import FieldCipher
from gateway.privacy.fields import DecryptionError
from gateway.storage.database import Database
from gateway.storage.metadata import utcnow
from gateway.web.tables import staff_sessions

#: The session cookie (path ``/console``; HttpOnly, SameSite=Strict, Secure over TLS).
SESSION_COOKIE = "ow_console"
#: The sign-in form's CSRF cookie (double submit: no session exists yet).
SIGN_IN_COOKIE = "ow_signin"
#: ``seen_at`` is written at most this often (a request every second must not mean a write every second).
TOUCH_EVERY = dt.timedelta(seconds=30)

_TABLE = staff_sessions.name


class PendingReceipt(msgspec.Struct, frozen=True):
    application_id: str
    query_code: str


class StaffSession(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    principal: Principal
    csrf: str

    def csrf_matches(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(self.csrf.encode(), (sent or "").encode())


def session_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class SessionStore:
    def __init__(
        self,
        *,
        database: Database,
        cipher: FieldCipher,
        authenticator: TokenAuthenticator,
        idle: dt.timedelta,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = database
        self.cipher = cipher
        self.authenticator = authenticator
        self.idle = idle
        self.now = now

    async def open(self, token: str) -> tuple[str, StaffSession] | None:
        """A new session for a valid staff token: (the cookie's secret, the session); None for a bad token."""
        principal = await self.authenticator.authenticate(token.strip())
        if principal is None or principal.role.value == "system":
            return None
        secret = new_secret()
        sid = session_id(secret)
        csrf = secrets.token_urlsafe(24)
        now = self.now()
        sealed = self.cipher.encrypt(token.strip(), table=_TABLE, column="token", row_id=sid)
        async with self.db.transaction() as conn:
            await conn.execute(
                staff_sessions.insert().values(id=sid, token=sealed, csrf=csrf, created_at=now, seen_at=now)
            )
        return secret, StaffSession(id=sid, principal=principal, csrf=csrf)

    async def resolve(self, secret: str | None) -> StaffSession | None:
        """The live session of a cookie, or None (unknown, idle too long — then deleted — or token revoked)."""
        if not secret or len(secret) > 100:
            return None
        sid = session_id(secret)
        async with self.db.read() as conn:
            row = (await conn.execute(select(staff_sessions).where(staff_sessions.c.id == sid))).first()
        if row is None:
            return None
        now = self.now()
        if now - row.seen_at > self.idle:
            await self.close_id(sid)
            return None
        try:
            token = self.cipher.decrypt(row.token, table=_TABLE, column="token", row_id=sid)
        except DecryptionError:  # its key was retired since: sign in again
            await self.close_id(sid)
            return None
        principal = await self.authenticator.authenticate(token)
        if principal is None:
            await self.close_id(sid)
            return None
        if now - row.seen_at > TOUCH_EVERY:
            async with self.db.transaction() as conn:
                await conn.execute(
                    update(staff_sessions)
                    .where(staff_sessions.c.id == sid, staff_sessions.c.seen_at < now)
                    .values(seen_at=now)
                )
        return StaffSession(id=sid, principal=principal, csrf=row.csrf)

    async def close(self, secret: str | None) -> None:
        if secret:
            await self.close_id(session_id(secret))

    async def close_id(self, sid: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(delete(staff_sessions).where(staff_sessions.c.id == sid))

    async def purge_idle(self) -> int:
        """Delete sessions idle past the timeout; returns how many."""
        cutoff = self.now() - self.idle
        async with self.db.transaction() as conn:
            result = await conn.execute(delete(staff_sessions).where(staff_sessions.c.seen_at < cutoff))
        return int(result.rowcount or 0)

    # -- the query code, from acceptance to the printed receipt ---------------------------------------------
    async def park_receipt(self, session: StaffSession, application_id: str, query_code: str) -> None:
        payload = msgspec.json.encode(PendingReceipt(application_id, query_code)).decode()
        sealed = self.cipher.encrypt(payload, table=_TABLE, column="pending_receipt", row_id=session.id)
        async with self.db.transaction() as conn:
            await conn.execute(
                update(staff_sessions).where(staff_sessions.c.id == session.id).values(pending_receipt=sealed)
            )

    async def take_receipt(self, session: StaffSession, application_id: str) -> str | None:
        """The query code parked for ``application_id`` — once: the same conditional update clears it."""
        async with self.db.transaction() as conn:
            sealed = (
                await conn.execute(select(staff_sessions.c.pending_receipt).where(staff_sessions.c.id == session.id))
            ).scalar_one_or_none()
            if not sealed:
                return None
            payload = self.cipher.decrypt(sealed, table=_TABLE, column="pending_receipt", row_id=session.id)
            pending = msgspec.json.decode(payload, type=PendingReceipt)
            if pending.application_id != application_id:
                return None
            cleared = await conn.execute(
                update(staff_sessions)
                .where(staff_sessions.c.id == session.id, staff_sessions.c.pending_receipt == sealed)
                .values(pending_receipt=None)
            )
            if cleared.rowcount != 1:
                return None
        return pending.query_code


__all__ = [
    "SESSION_COOKIE",
    "SIGN_IN_COOKIE",
    "PendingReceipt",
    "SessionStore",
    "StaffSession",
    "new_secret",
    "session_id",
]
