"""Grid workers and unit-bound supervisors: the binding a token may have and what each sees."""

from __future__ import annotations

import pytest

from gateway.identity.principal import Principal, Role, unit_covers, unit_prefix
from gateway.identity.tokens import validate_binding
from gateway.problems import Unprocessable

STREET, COMMUNITY, GRID = "430302001000", "430302001001", "430302001001001"
OTHER_COMMUNITY_GRID = "430302001002001"


def test_unit_prefixes_follow_the_code_tree() -> None:
    assert unit_prefix("430302000000") == "430302"
    assert unit_prefix(STREET) == "430302001"
    assert unit_prefix(COMMUNITY) == COMMUNITY
    assert unit_covers(STREET, GRID) and unit_covers(COMMUNITY, GRID) and unit_covers(GRID, GRID)
    assert not unit_covers(COMMUNITY, OTHER_COMMUNITY_GRID)
    assert not unit_covers(STREET, "430302002001001")
    assert not unit_covers(STREET, None)


def test_a_grid_worker_sees_only_their_grid() -> None:
    worker = Principal(token_id="t", role=Role.GRID_WORKER, unit=GRID)
    assert worker.can_see(units=(STREET, STREET), department="civil_affairs", grid=GRID)
    assert not worker.can_see(units=(STREET, STREET), department="civil_affairs", grid=OTHER_COMMUNITY_GRID)
    assert not worker.can_see(units=(STREET,), grid=None)
    assert not worker.is_district_wide


def test_a_supervisor_bound_to_a_community_sees_what_lies_under_it() -> None:
    supervisor = Principal(token_id="t", role=Role.SUPERVISOR, unit=COMMUNITY)
    assert not supervisor.is_district_wide
    assert supervisor.can_see(units=(STREET, STREET), grid=GRID)
    assert supervisor.can_see(units=(COMMUNITY, STREET), grid=None)
    assert not supervisor.can_see(units=(STREET, STREET), grid=OTHER_COMMUNITY_GRID)
    assert Principal(token_id="t", role=Role.SUPERVISOR).is_district_wide


def test_bindings() -> None:
    role, _ = validate_binding(role="grid_worker", unit=GRID, department=None, scopes=(), label=None)
    assert role is Role.GRID_WORKER
    with pytest.raises(Unprocessable) as missing:
        validate_binding(role="grid_worker", unit=None, department=None, scopes=(), label=None)
    assert [e.field for e in missing.value.errors or []] == ["unit"]
    role, _ = validate_binding(role="supervisor", unit=STREET, department=None, scopes=(), label=None)
    assert role is Role.SUPERVISOR
    with pytest.raises(Unprocessable) as wrong:
        validate_binding(role="admin", unit=STREET, department=None, scopes=(), label=None)
    assert [e.field for e in wrong.value.errors or []] == ["unit"]
