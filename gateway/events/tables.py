"""The events domain's tables: the transactional outbox, webhook subscriptions and their deliveries.

``outbox_events`` is written in the transaction of the change it describes (`gateway.events.outbox.emit`), so an
event exists exactly when its change committed. ``seq`` orders events; for one case it is also the commit order,
because every change of a case holds that case's row until it commits. The dispatcher fans each event out into
one ``webhook_deliveries`` row per matching subscription (unique per subscription and event: dispatched once),
then sends those rows, retrying with back-off. Nothing of this lives only in memory or in Redis.

Subscriptions keep their ``whsec_`` secret encrypted (`gateway.privacy.FieldCipher`, bound to the row), the
previous one until its overlap window ends, and the endpoint's health: the circuit breaker (consecutive failures,
open until) and how long it has been failing (the alert).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint

from gateway.privacy import register_encrypted_column
from gateway.storage.metadata import IdType, UTCDateTime, metadata

#: SQLite numbers rows itself only for an ``INTEGER PRIMARY KEY``; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    #: The event's id (the ``webhook-id`` receivers dedupe by).
    Column("id", IdType(), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("application_id", IdType(), nullable=True),
    #: What subscriptions filter on and the live stream scopes by (copied from the case at the time of the event).
    Column("item_code", String(64), nullable=True),
    Column("department", String(64), nullable=True),
    Column("filing_unit", String(64), nullable=True),
    Column("handling_unit", String(64), nullable=True),
    #: The thin payload's ``data`` (ids, status, item; never personal data).
    Column("data", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    #: Set when the dispatcher made this event's deliveries (NULL: not yet).
    Column("dispatched_at", UTCDateTime, nullable=True),
)
Index("ix_outbox_events_dispatched_at_seq", outbox_events.c.dispatched_at, outbox_events.c.seq)
Index("ix_outbox_events_application_id", outbox_events.c.application_id)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("url", Text, nullable=False),
    #: The event types (a JSON list) and the filters (``{"items": […], "departments": […], "units": […]}``).
    Column("events", JSON, nullable=False),
    Column("filters", JSON, nullable=False),
    Column("description", String(200), nullable=True),
    #: The token that registered it (``token:<id>``) and its role: a system sees only its own subscriptions.
    Column("owner", String(100), nullable=False),
    Column("owner_role", String(16), nullable=False),
    #: ``active`` or ``disabled`` (410 Gone from the receiver, or an operator).
    Column("status", String(16), nullable=False),
    Column("disabled_reason", String(200), nullable=True),
    Column("disabled_at", UTCDateTime, nullable=True),
    #: The secret, encrypted; the one before a rotation while its overlap window lasts.
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_until", UTCDateTime, nullable=True),
    #: The endpoint's health: the breaker and the alert.
    Column("consecutive_failures", Integer, nullable=False),
    Column("breaker_open_until", UTCDateTime, nullable=True),
    Column("failing_since", UTCDateTime, nullable=True),
    Column("alerted_at", UTCDateTime, nullable=True),
    Column("last_success_at", UTCDateTime, nullable=True),
    Column("last_failure_at", UTCDateTime, nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
# `onewindow keys rotate` re-encrypts them with the personal data.
register_encrypted_column("webhook_subscriptions", "secret")
register_encrypted_column("webhook_subscriptions", "previous_secret")

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", IdType(), primary_key=True),
    Column("subscription_id", IdType(), ForeignKey(webhook_subscriptions.c.id, ondelete="CASCADE"), nullable=False),
    Column("event_seq", SeqType, ForeignKey(outbox_events.c.seq, ondelete="CASCADE"), nullable=False),
    Column("application_id", IdType(), nullable=True),
    #: ``pending`` (not tried yet), ``failed`` (tried, will retry), ``succeeded``, ``dead`` (retries exhausted).
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    #: A claim: the dispatcher sending it now, until when (a crashed sender's claim simply runs out).
    Column("lease_owner", String(32), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("last_attempt_at", UTCDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("succeeded_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("subscription_id", "event_seq"),
)
Index("ix_webhook_deliveries_state_next_attempt_at", webhook_deliveries.c.state, webhook_deliveries.c.next_attempt_at)
Index(
    "ix_webhook_deliveries_subscription_id_application_id",
    webhook_deliveries.c.subscription_id,
    webhook_deliveries.c.application_id,
    webhook_deliveries.c.event_seq,
)

__all__ = ["outbox_events", "webhook_deliveries", "webhook_subscriptions"]
