"""What every console page needs: the signed-in member of staff, CSRF checks, the services, safe return paths.

A console request without a live session raises `SignInRequired` (answered with a redirect to the sign-in page
that returns to the same case afterwards: a draft survives the session that was filing it). A form whose CSRF
token does not match the session's raises `CsrfRejected` (403, nothing changed: it is checked before anything
else runs).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict

from gateway.context import AppContext, context_of
from gateway.identity.principal import Role
from gateway.intake.applicant import PersonalDataService
from gateway.intake.deps import provide_intake, provide_material_evidence, provide_personal_data
from gateway.intake.services import IntakeService
from gateway.intake.verification import MaterialEvidenceService
from gateway.lifecycle.deps import provide_lifecycle, provide_supervision
from gateway.lifecycle.services import LifecycleService
from gateway.lifecycle.supervision import SupervisionService
from gateway.problems import Forbidden, NotFound
from gateway.tracking.deps import provide_rectifications
from gateway.tracking.rectifications import RectificationService
from gateway.web.sessions import SESSION_COOKIE, SessionStore, StaffSession

#: Where a sign-in may return to: console pages only, with nothing in them but ids.
_RETURN_PATH = re.compile(r"^/console(/applications/[0-9a-f]{32}|/queue|/supervision)?$")
_CASE_PREFIX = re.compile(r"^(/console/applications/[0-9a-f]{32})(/.*)?$")
ROLE_NAMES = {
    Role.CLERK: "窗口受理人员",
    Role.OFFICER: "部门审批人员",
    Role.SUPERVISOR: "督查人员",
    Role.ADMIN: "系统管理员",
}


class SignInRequired(Exception):
    """No live session (never signed in, signed out, idle too long, token revoked)."""

    def __init__(self, return_to: str) -> None:
        super().__init__(return_to)
        self.return_to = return_to


class CsrfRejected(Exception):
    """A console form without this session's CSRF token."""


def safe_return(path: str | None) -> str:
    """``path`` when it is a console page a sign-in may return to, else the console's home."""
    if path and _RETURN_PATH.match(path):
        return path
    return "/console"


def return_path(request: Request[Any, Any, Any]) -> str:
    """Where to come back after signing in again: the page asked for, or the case a form was about."""
    path = request.url.path
    if request.method == "GET" and _RETURN_PATH.match(path):
        return path
    match = _CASE_PREFIX.match(path)
    return match.group(1) if match else "/console"


def sessions(context: AppContext) -> SessionStore:
    return SessionStore(
        database=context.database,
        cipher=context.cipher,
        authenticator=context.authenticator,
        idle=dt.timedelta(minutes=context.settings.console_idle_minutes),
    )


async def current(request: Request[Any, Any, Any]) -> StaffSession:
    """The live session of this request, or `SignInRequired`."""
    session = await sessions(context_of(request.app)).resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired(return_path(request))
    return session


async def posted(request: Request[Any, Any, Any]) -> tuple[StaffSession, FormMultiDict]:
    """The session and the form of a console POST, its CSRF token checked first."""
    session = await current(request)
    form = await request.form()
    sent = form.get("csrf")
    if not session.csrf_matches(sent if isinstance(sent, str) else None):
        raise CsrfRejected
    return session, form


def require(session: StaffSession, *roles: Role) -> None:
    if session.principal.role not in roles:
        raise Forbidden("此功能不属于您的岗位。")


def text(form: FormMultiDict, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def check_id(value: str) -> str:
    """An application id from a path: 32 hex characters, else the same 404 as a missing case."""
    if not re.fullmatch(r"[0-9a-f]{32}", value):
        raise NotFound("No such application.")
    return value


def intake(request: Request[Any, Any, Any]) -> IntakeService:
    return provide_intake(context_of(request.app))


def material_evidence(request: Request[Any, Any, Any]) -> MaterialEvidenceService:
    return provide_material_evidence(context_of(request.app))


def lifecycle(request: Request[Any, Any, Any]) -> LifecycleService:
    return provide_lifecycle(context_of(request.app))


def supervision(request: Request[Any, Any, Any]) -> SupervisionService:
    return provide_supervision(context_of(request.app))


def rectifications(request: Request[Any, Any, Any]) -> RectificationService:
    return provide_rectifications(context_of(request.app))


def personal_data(request: Request[Any, Any, Any]) -> PersonalDataService:
    return provide_personal_data(context_of(request.app))


__all__ = [
    "ROLE_NAMES",
    "CsrfRejected",
    "SignInRequired",
    "check_id",
    "current",
    "intake",
    "lifecycle",
    "personal_data",
    "posted",
    "rectifications",
    "require",
    "return_path",
    "safe_return",
    "sessions",
    "supervision",
    "text",
]
