"""The dispatcher: from the outbox to every subscriber, at least once, in order per case.

One round (`Dispatcher.step`), repeated by `Dispatcher.run` while there is work and every ``events_poll_seconds``
when there is none:

1. **Fan out.** Events not yet dispatched (``outbox_events.dispatched_at IS NULL``), oldest first, become one
   ``webhook_deliveries`` row per active subscription whose types and filters match, and are marked dispatched —
   one transaction, so an event is fanned out exactly once (on PostgreSQL one process fans out at a time, under a
   transaction-level advisory lock; on SQLite writers take turns anyway). The events are then published to the
   live stream.
2. **Claim.** Due deliveries (``pending`` or ``failed``, ``next_attempt_at`` passed, no live claim, the endpoint's
   breaker closed) whose case has no earlier delivery still open for the same subscription are claimed with a
   conditional update setting ``lease_owner`` and ``lease_until`` (PostgreSQL: ``FOR UPDATE SKIP LOCKED`` first,
   so concurrent dispatchers take disjoint rows). Whatever the number of processes, a delivery is being sent by
   at most one of them; a claim of a process that died runs out and the delivery is claimed again — which is how a
   receiver may see one event twice (it dedupes by ``webhook-id``), and never none.
3. **Send**, outside any transaction: Standard Webhooks headers and body, through the SSRF guard, no redirects,
   the answer's body read up to a cap, the whole attempt within ``webhook_timeout_seconds``.
4. **Record**, one transaction, each update conditional on still holding the claim: 2xx succeeded; 410 Gone
   disables the subscription (audited); anything else is retried after `gateway.events.retry.retry_delay`, or
   becomes a dead letter when attempts or the retry window run out. The endpoint's health is updated with it:
   consecutive failures open its breaker for ``webhook_breaker_seconds`` (its deliveries are not claimed
   meanwhile, then one probe goes); ``failing_since`` feeds the alert.

Write transactions: `Dispatcher.step` writes steps 1, 2 and 4 each in its own. The lanes of `Dispatcher.run` call
`Dispatcher.round` instead when ``one_transaction`` is on (the default on SQLite), which writes a round as one
transaction — the outcomes
of the lane's previous batch (step 4, deferred), then steps 1 and 2 — because there every write transaction queues
for the process's one writer behind the application's commits, and three queued turns per round made deliveries
lag under load. The claims of a batch hold until its outcomes are written; a process that dies first leaves
claims that run out, so those deliveries are sent again, never lost.

`Dispatcher.sweep` (every few seconds) dead-letters deliveries older than the retry window and raises the alert
of an endpoint failing longer than ``webhook_alert_after_seconds`` (an audit record ``webhook.endpoint_failing``
and a warning in the log, once per failing spell; `gateway.events.alerts` lists them).

Why no job queue (SAQ) in between: the outbox table is already the queue, and a second one would be a copy that
can drift from it. docs/events.md has the comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from sqlalchemy import Select, and_, bindparam, case, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.events import signing
from gateway.events.guard import GuardedResolver, RefusedTarget, Target, TargetPolicy
from gateway.events.retry import retry_delay, retry_window
from gateway.events.tables import outbox_events, webhook_deliveries, webhook_subscriptions
from gateway.privacy import FieldCipher
from gateway.settings import Settings
from gateway.storage.database import Database
from gateway.storage.faults import log_failed_round
from gateway.storage.locks import lock_key
from gateway.storage.metadata import new_id, utcnow
from gateway.storage.prepared import PreparedRead

log = logging.getLogger("onewindow.events")

#: PostgreSQL advisory lock key held while fanning out (one process at a time keeps the order per case).
FANOUT_LOCK_KEY = 0x6F77_6576  # "owev"
_TRY_FANOUT_LOCK = text(f"SELECT pg_try_advisory_xact_lock({lock_key('key')})")
#: Delivery states that still have to be sent.
OPEN_STATES = ("pending", "failed")

#: Whether a round has anything to do: an event not yet fanned out, a delivery due (its lease, if any, run out).
_pending_work: Any = select(
    exists().where(outbox_events.c.dispatched_at.is_(None)).label("events"),
    exists()
    .where(
        or_(*(webhook_deliveries.c.state == state for state in OPEN_STATES)),
        webhook_deliveries.c.next_attempt_at <= bindparam("now"),
        or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < bindparam("now")),
    )
    .label("due"),
)
_PENDING_WORK = PreparedRead(_pending_work, name="events.pending_work")

DELIVERY_STATES = ("pending", "failed", "succeeded", "dead")
#: Events fanned out per round, deliveries claimed per round, and sent at once to one endpoint.
FANOUT_BATCH = 1000
CLAIM_BATCH = 250
PER_ENDPOINT_CONCURRENCY = 64
#: Rounds a dispatcher runs side by side (`Dispatcher.run`).
LANES = 3
SWEEP_SECONDS = 5.0
USER_AGENT = "OneWindow-Webhooks/1.0"

_ENCODER = msgspec.json.Encoder()

#: Receives the events a fan-out just dispatched (the live stream's publisher).
Publisher = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass
class Claimed:
    """A delivery this dispatcher holds the claim of."""

    id: str
    subscription_id: str
    url: str
    event_id: str
    type: str
    data: dict[str, Any]
    event_at: dt.datetime
    attempts: int
    created_at: dt.datetime
    secrets: list[str] = field(default_factory=list)


@dataclass
class Attempt:
    claimed: Claimed
    status: int | None
    error: str | None
    at: dt.datetime

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status == 410


def message_body(event_type: str, event_at: dt.datetime, data: dict[str, Any]) -> bytes:
    """The webhook body: ``{"type", "timestamp", "data"}``."""
    return _ENCODER.encode({"type": event_type, "timestamp": event_at.isoformat(), "data": data})


def matches(subscription: Any, event: Any) -> bool:
    """Whether ``event`` (a row of outbox_events) goes to ``subscription`` (its types and filters)."""
    if event.type not in (subscription.events or []):
        return False
    filters: dict[str, list[str]] = subscription.filters or {}
    items, departments, units = filters.get("items"), filters.get("departments"), filters.get("units")
    if items and event.item_code not in items:
        return False
    if departments and event.department not in departments:
        return False
    return not units or event.filing_unit in units or event.handling_unit in units


def stream_event(event: Any) -> dict[str, Any]:
    """What the live stream carries of an event: the webhook body's members plus the scope fields."""
    return {
        "id": event.id,
        "seq": int(event.seq),
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "data": dict(event.data),
        "scope": {
            "department": event.department,
            "filing_unit": event.filing_unit,
            "handling_unit": event.handling_unit,
        },
    }


#: The events just fanned out, marked (built once, like `_claim_query`).
_MARK_DISPATCHED = (
    update(outbox_events)
    .where(outbox_events.c.seq.in_(bindparam("seqs", expanding=True)), outbox_events.c.dispatched_at.is_(None))
    .values(dispatched_at=bindparam("now", type_=outbox_events.c.dispatched_at.type))
)


@functools.cache
def _claim_query(postgres: bool) -> Select[Any]:
    """Due deliveries with what sending them needs, at most one open delivery per subscription and case (an earlier
    open one blocks the later). Built once per dialect (parameters ``now`` and ``limit``): built per round, its
    alias and column collections cost the construction and left reference cycles for the garbage collector."""
    d, s, o = webhook_deliveries.c, webhook_subscriptions.c, outbox_events.c
    now = bindparam("now", type_=webhook_deliveries.c.next_attempt_at.type)
    earlier = webhook_deliveries.alias("earlier")
    blocked = exists().where(
        earlier.c.subscription_id == d.subscription_id,
        earlier.c.application_id == d.application_id,
        earlier.c.event_seq < d.event_seq,
        earlier.c.state.in_(OPEN_STATES),
    )
    query = (
        select(
            d.id,
            d.subscription_id,
            d.attempts,
            d.created_at,
            o.id.label("event_id"),
            o.type,
            o.data,
            o.created_at.label("event_at"),
            s.url,
            s.secret,
            s.previous_secret,
            s.previous_secret_until,
            s.consecutive_failures,
        )
        .select_from(
            webhook_deliveries.join(webhook_subscriptions, s.id == d.subscription_id).join(
                outbox_events, o.seq == d.event_seq
            )
        )
        .where(
            d.state.in_(OPEN_STATES),
            d.next_attempt_at <= now,
            or_(d.lease_until.is_(None), d.lease_until < now),
            s.status == "active",
            or_(s.breaker_open_until.is_(None), s.breaker_open_until <= now),
            ~blocked,
        )
        .order_by(d.event_seq)
        .limit(bindparam("limit"))
    )
    if postgres:
        query = query.with_for_update(of=webhook_deliveries, skip_locked=True)
    return query


class Dispatcher:
    def __init__(
        self,
        *,
        database: Database,
        cipher: FieldCipher,
        settings: Settings,
        publish: Publisher | None = None,
        now: Callable[[], dt.datetime] = utcnow,
        claim_batch: int = CLAIM_BATCH,
        one_transaction: bool | None = None,
    ) -> None:
        self.db = database
        self.cipher = cipher
        self.settings = settings
        self.publish = publish
        self.now = now
        self.claim_batch = claim_batch
        #: Lanes write each round in one transaction (record the last batch, fan out, claim the next): the default
        #: on SQLite, where every write transaction queues for the one writer behind the application's commits.
        self.one_transaction = database.dialect == "sqlite" if one_transaction is None else one_transaction
        #: This dispatcher's claims carry this id.
        self.owner = new_id()
        self.policy = TargetPolicy.parse(settings.webhook_allowed_networks)
        self.timeout = settings.webhook_timeout_seconds
        self.lease = dt.timedelta(seconds=self.timeout * 1.5 + 5)
        self._client_timeout = aiohttp.ClientTimeout(total=self.timeout)
        self.scale = settings.webhook_time_scale
        self._session: aiohttp.ClientSession | None = None
        self._secrets: dict[tuple[str, str], str] = {}
        self._limits: dict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(PER_ENDPOINT_CONCURRENCY))
        self._next_sweep = 0.0
        self._fanning = asyncio.Lock()
        #: Set while rounds find work: wakes the idle lanes.
        self._busy = asyncio.Event()

    # -- resources -------------------------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.policy),
                limit=256,
                limit_per_host=PER_ENDPOINT_CONCURRENCY,
                ttl_dns_cache=10,
            )
            # trust_env off: no proxy from the environment carries a delivery past the guard.
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- 1. fan out ------------------------------------------------------------------------------------------

    async def _pending_work(self) -> tuple[bool, bool]:
        """(events waiting for fan-out, deliveries due) — read first, so an idle round writes nothing. One prepared
        read (`Database.fetch`: on SQLite inline, no worker thread), as every idle lane and poll runs it."""
        row = await self.db.fetch_one(_PENDING_WORK, now=self.now())
        return (False, False) if row is None else (bool(row.events), bool(row.due))

    async def fan_out(self, limit: int = FANOUT_BATCH) -> int:
        """Deliveries for the events not yet dispatched; returns how many events were dispatched."""
        async with self.db.transaction() as conn:
            events = await self._fan_out_in(conn, limit)
        await self._publish(events)
        return len(events)

    async def _fan_out_in(self, conn: AsyncConnection, limit: int = FANOUT_BATCH) -> list[Any]:
        """`fan_out` inside the caller's write transaction; returns the events dispatched (to publish after it)."""
        now = self.now()
        o = outbox_events.c
        if conn.dialect.name == "postgresql":
            got = await conn.execute(_TRY_FANOUT_LOCK, {"key": FANOUT_LOCK_KEY})
            if not got.scalar_one():
                return []  # another process is fanning out right now
        events = list(
            await conn.execute(select(outbox_events).where(o.dispatched_at.is_(None)).order_by(o.seq).limit(limit))
        )
        if not events:
            return []
        subscriptions = list(
            await conn.execute(
                select(
                    webhook_subscriptions.c.id, webhook_subscriptions.c.events, webhook_subscriptions.c.filters
                ).where(webhook_subscriptions.c.status == "active")
            )
        )
        rows = [
            {
                "id": new_id(),
                "subscription_id": s.id,
                "event_seq": e.seq,
                "application_id": e.application_id,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for e in events
            for s in subscriptions
            if matches(s, e)
        ]
        if rows:
            await conn.execute(webhook_deliveries.insert(), rows)
        # Exactly the events read, not a range of numbers: on PostgreSQL a transaction that drew a number in
        # the range may commit between the read and this update, and its event has no deliveries yet.
        await conn.execute(_MARK_DISPATCHED, {"seqs": [e.seq for e in events], "now": now})
        return events

    async def _publish(self, events: list[Any]) -> None:
        if self.publish is not None and events:
            try:
                await self.publish([stream_event(e) for e in events])
            except Exception:  # the live stream is best effort; the webhooks are not
                log.warning("live stream: publishing %d events failed", len(events), exc_info=True)

    # -- 2. claim --------------------------------------------------------------------------------------------

    async def claim(self, limit: int | None = None) -> list[Claimed]:
        """Claim due deliveries (at most ``limit``), at most one open delivery per subscription and case."""
        async with self.db.transaction() as conn:
            return await self._claim_in(conn, limit)

    async def _claim_in(self, conn: AsyncConnection, limit: int | None = None) -> list[Claimed]:
        """`claim` inside the caller's write transaction (the claims hold once it commits)."""
        now = self.now()
        d = webhook_deliveries.c
        query = _claim_query(conn.dialect.name == "postgresql")
        rows = list(await conn.execute(query, {"now": now, "limit": limit or self.claim_batch}))
        # An endpoint coming out of its breaker gets one probe, not the whole backlog at once.
        probing: set[str] = set()
        chosen = []
        for r in rows:
            if r.consecutive_failures >= self.settings.webhook_breaker_failures:
                if r.subscription_id in probing:
                    continue
                probing.add(r.subscription_id)
            chosen.append(r)
        if not chosen:
            return []
        claimed_ids = {
            row.id
            for row in await conn.execute(
                update(webhook_deliveries)
                .where(
                    d.id.in_([r.id for r in chosen]),
                    d.state.in_(OPEN_STATES),
                    or_(d.lease_until.is_(None), d.lease_until < now),
                )
                .values(lease_owner=self.owner, lease_until=now + self.lease)
                .returning(d.id)
            )
        }
        claims = []
        for r in chosen:
            if r.id not in claimed_ids:
                continue
            secrets = [self._secret(r.subscription_id, "secret", r.secret)]
            if r.previous_secret and r.previous_secret_until is not None and r.previous_secret_until > now:
                secrets.append(self._secret(r.subscription_id, "previous_secret", r.previous_secret))
            claims.append(
                Claimed(
                    id=r.id,
                    subscription_id=r.subscription_id,
                    url=r.url,
                    event_id=r.event_id,
                    type=r.type,
                    data=dict(r.data),
                    event_at=r.event_at,
                    attempts=r.attempts,
                    created_at=r.created_at,
                    secrets=secrets,
                )
            )
        return claims

    def _secret(self, subscription_id: str, column: str, token: str) -> str:
        key = (subscription_id, token)
        secret = self._secrets.get(key)
        if secret is None:
            secret = self.cipher.decrypt(token, table="webhook_subscriptions", column=column, row_id=subscription_id)
            self._secrets[key] = secret
        return secret

    # -- 3. send ---------------------------------------------------------------------------------------------

    async def deliver(self, claimed: Claimed) -> Attempt:
        """One attempt: signed POST through the guard; never raises."""
        body = message_body(claimed.type, claimed.event_at, claimed.data)
        headers = signing.headers(claimed.secrets, claimed.event_id, int(time.time()), body)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        status: int | None = None
        error: str | None = None
        async with self._limits[claimed.subscription_id]:
            try:
                target = Target(claimed.url)
                if target.literal is not None:  # the client does not resolve literals: check it here
                    self.policy.check_address(target.literal, target.host)
                async with self.session().post(
                    claimed.url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                    timeout=self._client_timeout,
                ) as response:
                    await response.content.read(self.settings.webhook_max_response_bytes)
                    status = response.status
                if 300 <= status < 400:
                    error = f"redirect {status} not followed"
                elif not 200 <= status < 300:
                    error = f"answered {status}"
            except RefusedTarget as exc:
                error = f"refused ({exc.rule}): {exc.message}"
            except TimeoutError:
                error = f"no answer within {self.timeout:g} s"
            except aiohttp.ClientError as exc:
                error = f"{type(exc).__name__}: {exc}"
            except OSError as exc:
                error = f"{type(exc).__name__}: {exc}"
        return Attempt(claimed=claimed, status=status, error=error[:200] if error else None, at=self.now())

    # -- 4. record -------------------------------------------------------------------------------------------

    async def record(self, attempts: Sequence[Attempt]) -> None:
        """Write the attempts' outcomes and the endpoints' health, each conditional on still holding the claim."""
        if not attempts:
            return
        async with self.db.transaction() as conn:
            await self._record_in(conn, attempts)

    async def _record_in(self, conn: AsyncConnection, attempts: Sequence[Attempt]) -> None:
        """`record` inside the caller's write transaction."""
        if not attempts:
            return
        now = self.now()
        window = retry_window(self.scale)
        d = webhook_deliveries.c
        succeeded: list[dict[str, Any]] = []
        retried: list[dict[str, Any]] = []
        per_subscription: dict[str, list[Attempt]] = defaultdict(list)
        gone: dict[str, Attempt] = {}
        for a in attempts:
            per_subscription[a.claimed.subscription_id].append(a)
            tries = a.claimed.attempts + 1
            if a.ok:
                succeeded.append({"b_id": a.claimed.id, "b_status": a.status, "b_at": a.at})
                continue
            if a.gone:
                gone[a.claimed.subscription_id] = a
                delay = None
            else:
                delay = retry_delay(tries, time_scale=self.scale)
            if delay is not None and now - a.claimed.created_at > window:
                delay = None
            retried.append(
                {
                    "b_id": a.claimed.id,
                    "b_status": a.status,
                    "b_at": a.at,
                    "b_error": a.error,
                    "b_state": "failed" if delay is not None else "dead",
                    "b_next": now + dt.timedelta(seconds=delay or 0),
                }
            )
        mine = and_(d.id == bindparam("b_id"), d.lease_owner == self.owner)
        if succeeded:
            await conn.execute(
                update(webhook_deliveries)
                .where(mine)
                .values(
                    state="succeeded",
                    attempts=d.attempts + 1,
                    last_status_code=bindparam("b_status"),
                    last_attempt_at=bindparam("b_at"),
                    succeeded_at=bindparam("b_at"),
                    last_error=None,
                    lease_owner=None,
                    lease_until=None,
                ),
                succeeded,
            )
        if retried:
            await conn.execute(
                update(webhook_deliveries)
                .where(mine)
                .values(
                    state=bindparam("b_state"),
                    attempts=d.attempts + 1,
                    last_status_code=bindparam("b_status"),
                    last_attempt_at=bindparam("b_at"),
                    last_error=bindparam("b_error"),
                    next_attempt_at=bindparam("b_next"),
                    lease_owner=None,
                    lease_until=None,
                ),
                retried,
            )
        for subscription_id in sorted(per_subscription):  # a fixed order: no two writers lock them crosswise
            await self._health(conn, subscription_id, per_subscription[subscription_id], now)
        for subscription_id, attempt in gone.items():
            await self._disable_gone(conn, subscription_id, attempt, now)

    async def _health(
        self, conn: AsyncConnection, subscription_id: str, outcomes: list[Attempt], now: dt.datetime
    ) -> None:
        s = webhook_subscriptions.c
        failures = [a for a in outcomes if not a.ok]
        if any(a.ok for a in outcomes):
            values: dict[str, Any] = {
                "consecutive_failures": 0,
                "breaker_open_until": None,
                "failing_since": None,
                "alerted_at": None,
                "last_success_at": now,
            }
        else:
            count = s.consecutive_failures + len(failures)
            breaker = now + dt.timedelta(seconds=self.settings.webhook_breaker_seconds * self.scale)
            values = {
                "consecutive_failures": count,
                "failing_since": func.coalesce(s.failing_since, now),
                "breaker_open_until": case(
                    (count >= self.settings.webhook_breaker_failures, breaker), else_=s.breaker_open_until
                ),
                "last_failure_at": now,
                "last_error": failures[-1].error,
            }
        await conn.execute(update(webhook_subscriptions).where(s.id == subscription_id).values(**values))

    async def _disable_gone(
        self, conn: AsyncConnection, subscription_id: str, attempt: Attempt, now: dt.datetime
    ) -> None:
        s = webhook_subscriptions.c
        disabled = await conn.execute(
            update(webhook_subscriptions)
            .where(s.id == subscription_id, s.status == "active")
            .values(
                status="disabled", disabled_at=now, disabled_reason="the receiver answered 410 Gone", updated_at=now
            )
        )
        if disabled.rowcount == 1:
            log.warning("webhook subscription %s disabled: its receiver answered 410 Gone", subscription_id)
            await audit.append(
                conn,
                actor="system",
                action="webhook.subscription_disabled",
                object_type="webhook_subscription",
                object_id=subscription_id,
                detail={"reason": "410 Gone", "delivery": attempt.claimed.id},
            )

    # -- sweeping --------------------------------------------------------------------------------------------

    async def sweep(self) -> tuple[int, int]:
        """Dead-letter deliveries past the retry window; alert on endpoints failing too long.
        Returns (dead-lettered, alerts raised)."""
        now = self.now()
        d, s = webhook_deliveries.c, webhook_subscriptions.c
        window = retry_window(self.scale)
        alert_after = dt.timedelta(seconds=self.settings.webhook_alert_after_seconds)
        async with self.db.transaction() as conn:
            expired = await conn.execute(
                update(webhook_deliveries)
                .where(
                    d.state.in_(OPEN_STATES),
                    d.created_at < now - window,
                    or_(d.lease_until.is_(None), d.lease_until < now),
                )
                .values(state="dead", last_error="retry window passed", lease_owner=None, lease_until=None)
            )
            failing = list(
                await conn.execute(
                    select(s.id, s.url, s.failing_since, s.last_error).where(
                        s.status == "active",
                        s.failing_since.is_not(None),
                        s.failing_since < now - alert_after,
                        s.alerted_at.is_(None),
                    )
                )
            )
            raised = 0
            for sub in failing:
                marked = await conn.execute(
                    update(webhook_subscriptions).where(s.id == sub.id, s.alerted_at.is_(None)).values(alerted_at=now)
                )
                if marked.rowcount != 1:
                    continue
                raised += 1
                log.warning(
                    "webhook endpoint of subscription %s failing since %s: %s",
                    sub.id,
                    sub.failing_since,
                    sub.last_error,
                )
                await audit.append(
                    conn,
                    actor="system",
                    action="webhook.endpoint_failing",
                    object_type="webhook_subscription",
                    object_id=sub.id,
                    detail={"failing_since": sub.failing_since.isoformat(), "last_error": sub.last_error},
                )
        return int(expired.rowcount or 0), raised

    # -- rounds ----------------------------------------------------------------------------------------------

    async def step(self) -> int:
        """One round (fan out, claim, send, record); returns the events fanned out plus the deliveries tried."""
        worked, attempts = await self.round()
        await self.record(attempts)
        return worked

    async def round(self, previous: Sequence[Attempt] = ()) -> tuple[int, list[Attempt]]:
        """Record ``previous`` (the last round's attempts), fan out, claim and send; returns the events fanned out
        plus the deliveries tried, and the attempts — not yet recorded: the caller records them, or passes them to
        the next round.

        With `one_transaction` the writes are one transaction (record, fan out, claim: the outcomes are written
        before the claim reads, so a case's next event is claimable in the round that records its predecessor);
        otherwise one each. Either way, a process that dies before its attempts are recorded leaves claims that run
        out: those deliveries are sent again (at least once), never lost.
        """
        if previous:
            events_waiting = due = True
        else:
            events_waiting, due = await self._pending_work()
            if not (events_waiting or due):
                return 0, []
        fan = events_waiting and not self._fanning.locked()
        events: list[Any] = []
        claims: list[Claimed] = []
        if self.one_transaction:
            async with self._fanning if fan else contextlib.nullcontext(), self.db.transaction() as conn:
                await self._record_in(conn, previous)
                if fan:
                    events = await self._fan_out_in(conn)
                if due or events:
                    claims = await self._claim_in(conn)
        else:
            await self.record(previous)
            if fan:
                async with self._fanning, self.db.transaction() as conn:
                    events = await self._fan_out_in(conn)
            if due or events:
                claims = await self.claim()
        await self._publish(events)
        attempts = list(await asyncio.gather(*(self.deliver(c) for c in claims))) if claims else []
        return len(events) + len(claims), attempts

    async def run(self, stop: asyncio.Event, *, lanes: int = LANES) -> None:
        """Rounds until ``stop`` is set: back to back while there is work, every poll interval when idle.

        ``lanes`` rounds run side by side, so one batch is being sent while the next is claimed and the last
        recorded (claims keep them apart, as between processes); one lane at a time fans out and sweeps.
        """
        await asyncio.gather(*(self._lane(stop, lane) for lane in range(lanes)))

    async def _lane(self, stop: asyncio.Event, lane: int) -> None:
        loop = asyncio.get_running_loop()
        if lane:  # start the lanes apart, so their claims do not arrive together
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.events_poll_seconds * lane / LANES)
        unrecorded: list[Attempt] = []  # this lane's last attempts: written by its next round
        while not stop.is_set():
            worked = 0
            try:
                if self.one_transaction:
                    worked, unrecorded = await self.round(unrecorded)
                else:  # a round in three transactions, its outcomes recorded at once
                    worked = await self.step()
                if lane == 0 and loop.time() >= self._next_sweep:
                    self._next_sweep = loop.time() + SWEEP_SECONDS
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database hiccup: log, wait, go on — the outbox keeps everything
                log_failed_round(log, "event dispatcher round", exc)  # (it rolled back: its attempts wait)
                worked = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            if worked or unrecorded:
                self._busy.set()
            else:
                await self._idle(stop, lane)
        try:
            await self.record(unrecorded)
        except Exception as exc:  # their claims run out and they go again: at least once
            log_failed_round(log, f"recording {len(unrecorded)} delivery attempts on stopping", exc)

    async def _idle(self, stop: asyncio.Event, lane: int) -> None:
        """Wait before the next round: lane 0 polls the database; the others sleep until lane 0 finds work (or
        ten poll intervals pass), so an idle dispatcher costs one lane's reads."""
        poll = self.settings.events_poll_seconds
        if lane == 0:
            self._busy.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
            return
        self._busy.clear()
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._busy.wait())}
        try:
            await asyncio.wait(waiters, timeout=poll * 10, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


__all__ = [
    "DELIVERY_STATES",
    "OPEN_STATES",
    "Attempt",
    "Claimed",
    "Dispatcher",
    "matches",
    "message_body",
    "stream_event",
]
