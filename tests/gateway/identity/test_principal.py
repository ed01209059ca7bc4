"""The scope rules domain services apply through `Principal`."""

from __future__ import annotations

from gateway.identity import Principal, Role

CLERK = Principal(token_id="c", role=Role.CLERK, unit="430302001000")
OFFICER = Principal(token_id="o", role=Role.OFFICER, department="civil_affairs")
SUPERVISOR = Principal(token_id="s", role=Role.SUPERVISOR)
ADMIN = Principal(token_id="a", role=Role.ADMIN)
SYSTEM = Principal(token_id="y", role=Role.SYSTEM, scopes=("status:read",))


def test_clerk_sees_own_unit_only() -> None:
    assert CLERK.can_see_unit("430302001000")
    assert not CLERK.can_see_unit("430302002000") and not CLERK.can_see_unit(None)
    assert not CLERK.can_see_department("civil_affairs")
    assert CLERK.can_see(units=("430302001001", "430302001000"))  # filed elsewhere, routed here
    assert not CLERK.can_see(units=("430302002000",), department="civil_affairs")


def test_officer_sees_own_department_only() -> None:
    assert OFFICER.can_see_department("civil_affairs") and not OFFICER.can_see_department("health")
    assert not OFFICER.can_see_unit("430302001000")
    assert OFFICER.can_see(units=("430302001000",), department="civil_affairs")
    assert not OFFICER.can_see(units=("430302001000",), department="health")


def test_district_wide_roles_and_systems() -> None:
    for p in (SUPERVISOR, ADMIN):
        assert p.is_district_wide and p.can_see(units=("x",), department="y") and p.can_see_unit(None)
    assert not SYSTEM.can_see(units=("430302001000",), department="civil_affairs")
    assert SYSTEM.has_scope("status:read") and not SYSTEM.has_scope("status:write")
    assert not ADMIN.has_scope("status:read")  # staff roles have no scopes
    assert CLERK.actor == "token:c"
