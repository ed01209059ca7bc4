"""Roles and the `Principal` a bearer token resolves to, with the scope rules domain services apply.

Scope rule (docs/api.md#auth-and-scope): an object outside the caller's scope answers 404, exactly as a missing one
does. Guards (`require_roles`) decide whether a role may call an operation at all (403); services decide whether
*this* object is visible to *this* principal with `Principal.can_see` and raise `NotFound` when it is not.

    clerk       bound to one unit (street or community code): sees applications filed at or routed to that unit
    officer     bound to one department code: sees applications for that department's items
    supervisor  district-wide, read and oversight
    admin       district-wide, operations (tokens, keys)
    system      another system; no unit or department; may do only what its scopes name ("status:read", …)
    department  a department's own system, bound to its department code: pushes events for that department's cases
    grid_worker bound to one grid (网格) code: sees the cases recorded under that grid, masked
A supervisor may be bound to a street or community: then they see what lies under it (its communities' and grids'
cases); without a unit a supervisor is district-wide.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec


class Role(StrEnum):
    CLERK = "clerk"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    SYSTEM = "system"
    DEPARTMENT = "department"
    GRID_WORKER = "grid_worker"


#: Roles that see every unit's and department's objects.
DISTRICT_WIDE = frozenset({Role.SUPERVISOR, Role.ADMIN})


def unit_prefix(unit_code: str) -> str:
    """The code prefix every unit under ``unit_code`` shares (codes are 12-digit 区划-style, grids 15 digits):
    the district ``430302000000`` → ``430302``, a street ``4303020NN000`` → ``4303020NN``, a community or grid →
    itself."""
    if len(unit_code) == 12 and unit_code.endswith("000000"):
        return unit_code[:6]
    if len(unit_code) == 12 and unit_code.endswith("000"):
        return unit_code[:9]
    return unit_code


def unit_covers(scope_unit: str, unit_code: str | None) -> bool:
    """Whether ``unit_code`` is ``scope_unit`` or lies under it (a community under its street, a grid under both)."""
    return unit_code is not None and unit_code.startswith(unit_prefix(scope_unit))


#: Scope names: ``resource:verb`` in lower case, e.g. ``status:read``, ``certificates:read``, ``status:write``.
SCOPE_PATTERN = re.compile(r"^[a-z][a-z_]*:[a-z][a-z_]*$")

#: Scopes the gateway's own routes use today; others are accepted if well-formed (new integrations).
KNOWN_SCOPES = frozenset({"status:read", "status:write", "certificates:read", "events:read", "applications:read"})


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling: the token's id, role and binding. Never holds the token itself."""

    token_id: str
    role: Role
    unit: str | None = None
    department: str | None = None
    scopes: tuple[str, ...] = ()
    label: str | None = None

    @property
    def actor(self) -> str:
        """The audit log's actor for this caller."""
        return f"token:{self.token_id}"

    @property
    def is_district_wide(self) -> bool:
        if self.role is Role.SUPERVISOR and self.unit:
            return False  # a street's or community's supervisor
        return self.role in DISTRICT_WIDE

    def has_scope(self, scope: str) -> bool:
        """A system principal's scope; staff roles have no scopes (their role decides)."""
        return self.role is Role.SYSTEM and scope in self.scopes

    def can_see_unit(self, unit_code: str | None) -> bool:
        """True when objects of this unit are visible: the clerk's own unit, or a district-wide role."""
        if self.is_district_wide:
            return True
        return self.role is Role.CLERK and unit_code is not None and unit_code == self.unit

    def can_see_department(self, department_code: str | None) -> bool:
        """True when objects of this department are visible: the officer's own, or a district-wide role."""
        if self.is_district_wide:
            return True
        return (
            self.role in (Role.OFFICER, Role.DEPARTMENT)
            and department_code is not None
            and department_code == self.department
        )

    def can_see(
        self, *, units: tuple[str | None, ...] = (), department: str | None = None, grid: str | None = None
    ) -> bool:
        """Whether an object bound to ``units`` (e.g. the receiving window and the unit it was routed to),
        ``department`` and ``grid`` is in this caller's scope. Services answer 404 when it is not."""
        if self.is_district_wide:
            return True
        if self.role is Role.GRID_WORKER:
            return grid is not None and grid == self.unit
        if self.role is Role.SUPERVISOR and self.unit:
            return any(unit_covers(self.unit, u) for u in (*units, grid))
        if self.role is Role.CLERK:
            return any(self.can_see_unit(u) for u in units)
        if self.role in (Role.OFFICER, Role.DEPARTMENT):
            return self.can_see_department(department)
        return False


__all__ = ["DISTRICT_WIDE", "KNOWN_SCOPES", "SCOPE_PATTERN", "Principal", "Role", "unit_covers", "unit_prefix"]
