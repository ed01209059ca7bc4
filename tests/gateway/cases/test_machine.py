"""The state machine table: every status reachable, finals final, roles and clock effects where they belong."""

from __future__ import annotations

from gateway.cases.machine import (
    CLOCK_PAUSED,
    FINAL,
    STATUSES,
    TRANSITIONS,
    allowed_targets,
    transition,
)


def test_statuses_are_contracts() -> None:
    assert set(STATUSES) == {
        "draft",
        "accepted",
        "not_accepted",
        "correction_required",
        "in_review",
        "special_procedure",
        "approved",
        "denied",
        "delivered",
        "withdrawn",
    }


def test_every_status_but_draft_is_reachable_and_finals_lead_nowhere() -> None:
    targets = {t.target for t in TRANSITIONS}
    assert targets == set(STATUSES) - {"draft"}
    for status in FINAL:
        assert not [t for t in TRANSITIONS if t.source == status]


def test_no_duplicate_pairs() -> None:
    pairs = [(t.source, t.target) for t in TRANSITIONS]
    assert len(pairs) == len(set(pairs))


def test_officer_moves() -> None:
    assert allowed_targets("accepted", "officer") == ["in_review"]
    assert allowed_targets("in_review", "officer") == ["correction_required", "special_procedure", "approved", "denied"]
    assert allowed_targets("special_procedure", "officer") == ["in_review"]
    assert allowed_targets("approved", "officer") == ["delivered"]
    assert allowed_targets("denied", "officer") == ["delivered"]


def test_clerk_moves() -> None:
    assert allowed_targets("draft", "clerk") == ["not_accepted", "withdrawn"]
    assert "accepted" in allowed_targets("draft", "clerk", via="accept")
    assert allowed_targets("correction_required", "clerk") == ["in_review", "withdrawn"]
    assert allowed_targets("in_review", "clerk") == ["withdrawn"]
    assert allowed_targets("accepted", "clerk") == ["withdrawn"]


def test_supervisors_do_not_handle_cases() -> None:
    for status in STATUSES:
        assert allowed_targets(status, "supervisor") == []


def test_clock_effects() -> None:
    for t in TRANSITIONS:
        if t.target in CLOCK_PAUSED:
            assert t.clock == "pause"
        if t.source in CLOCK_PAUSED and t.target == "in_review":
            assert t.clock == "resume"
        if t.target in {"approved", "denied"}:
            assert t.clock == "stop" and t.result_required
    accept = transition("draft", "accepted")
    assert accept is not None and accept.clock == "start" and accept.via == "accept"
    assert transition("draft", "approved") is None


def test_reasons_required_where_a_citizen_is_refused_or_asked() -> None:
    for source, target in [
        ("draft", "not_accepted"),
        ("in_review", "correction_required"),
        ("in_review", "special_procedure"),
        ("in_review", "denied"),
    ]:
        t = transition(source, target)
        assert t is not None and t.note_required
