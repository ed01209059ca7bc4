"""The case event types the gateway publishes (outbox, webhooks, the live stream), as data.

A type is ``<object>.<what happened>``; a subscription names the types it wants, and an unknown name is refused
(422). Adding a type: one line here, one emit call where the change happens, one line in docs/events.md.
"""

from __future__ import annotations

from typing import Final

#: A draft accepted (受理): tracking number and deadline assigned.
APPLICATION_ACCEPTED: Final = "application.accepted"
#: Any later status move (review, correction, special procedure, completion, delivery, withdrawal …).
APPLICATION_STATUS_CHANGED: Final = "application.status_changed"
#: The case was completed (办结): approved or denied. Sent after the ``application.status_changed`` of that move.
APPLICATION_COMPLETED: Final = "application.completed"
#: The citizen's evaluation (好差评) of a completed case.
EVALUATION_CREATED: Final = "evaluation.created"
#: A bad review opened a rectification (整改), and a supervisor closed one.
RECTIFICATION_OPENED: Final = "rectification.opened"
RECTIFICATION_CLOSED: Final = "rectification.closed"
#: A result certificate (结果证照) was issued for the case.
CERTIFICATE_ISSUED: Final = "certificate.issued"

#: Every type, in the order docs/events.md lists them.
EVENT_TYPES: Final[tuple[str, ...]] = (
    APPLICATION_ACCEPTED,
    APPLICATION_STATUS_CHANGED,
    APPLICATION_COMPLETED,
    EVALUATION_CREATED,
    RECTIFICATION_OPENED,
    RECTIFICATION_CLOSED,
    CERTIFICATE_ISSUED,
)


def is_event_type(name: str) -> bool:
    return name in EVENT_TYPES


__all__ = [
    "APPLICATION_ACCEPTED",
    "APPLICATION_COMPLETED",
    "APPLICATION_STATUS_CHANGED",
    "CERTIFICATE_ISSUED",
    "EVALUATION_CREATED",
    "EVENT_TYPES",
    "RECTIFICATION_CLOSED",
    "RECTIFICATION_OPENED",
    "is_event_type",
]
