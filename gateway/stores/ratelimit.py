"""Failure rate limiting for public lookups (anti-enumeration of tracking numbers and query codes).

Only *failed* attempts are counted, in a sliding window per client (``Settings.tracking_failures_per_minute``
per 60 s). Once a client has that many failures in the window, every lookup from it answers 429 with
``Retry-After`` until the oldest failure leaves the window — including lookups with a correct code, or the
limit would still leak which guesses are right. A client that only makes correct lookups is never counted,
so never throttled. With Redis the window is shared by every gateway process (one sorted set per client on
the Redis server's clock); in memory it covers one process.

Use it as::

    limiter = context_of(request.app).tracking_limiter
    client = client_address(request)         # the peer, or whom a trusted proxy names (gateway.clients)
    await limiter.check(client)              # raises TooManyRequests (429, Retry-After) while blocked
    found = ...                              # the lookup
    if not found:
        await limiter.record_failure(client)
        raise NotFound(...)

A correct attempt needs the store only if the client might be blocked: the limiter remembers which clients this
process saw fail within the window (`check_success`), so citizens' correct lookups never wait for Redis. In
memory that is exact; with several processes, a client blocked by failures made through other processes is answered
429 here from its first failure here on (every failure asks the store first), so at most about one correct lookup
per process and window goes unchecked — and an enumerating client fails almost every time.

Client keys are stored as a digest (client addresses are personal data too). When the store cannot be reached
the limiter lets the request through and logs it: a Redis outage must not close the public lookup.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable

from gateway.problems import TooManyRequests
from gateway.stores.backends import AtomicStore

log = logging.getLogger("onewindow.ratelimit")


#: Beyond this many clients with a failure in the window every attempt asks the store until they have expired.
_RECENT_MAX_CLIENTS = 10_000


class _RecentFailures:
    """The clients this process saw fail, each until its failure leaves the window.

    Keys are ``hash(client)`` (salted per process, never stored): a collision only makes an attempt ask the store
    when it need not. Entries are dropped only by `note`'s sweep, never on read, so event loops in several threads
    sharing a limiter cannot lose one another's entries.
    """

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until: dict[int, float] = {}

    def note(self, client: str, window_s: float) -> None:
        now = time.monotonic()
        if len(self.until) >= _RECENT_MAX_CLIENTS:
            for key in [k for k, t in self.until.items() if t <= now]:
                self.until.pop(key, None)
        self.until[hash(client)] = now + window_s

    def may_be_blocked(self, client: str) -> bool:
        if len(self.until) >= _RECENT_MAX_CLIENTS:
            return True
        until = self.until.get(hash(client))
        return until is not None and until > time.monotonic()


def _sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


class FailureLimiter:
    """Counts failures per client in a sliding window and blocks a client that reaches ``limit`` of them."""

    __slots__ = ("_recent", "hasher", "limit", "scope", "store", "window_ms")

    def __init__(
        self,
        store: AtomicStore,
        *,
        limit: int,
        window_seconds: float = 60.0,
        scope: str = "tracking",
        hasher: Callable[[str], str] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 failure per window")
        self.store = store
        self.limit = limit
        self.window_ms = max(1, int(window_seconds * 1000))
        self.scope = scope
        self.hasher = hasher or _sha256_hex
        self._recent = _RecentFailures()

    def _key(self, client_key: str) -> str:
        return f"{self.scope}:{self.hasher(client_key)}"

    def _wait_seconds(self, count: int, oldest_age_ms: int) -> int | None:
        if count < self.limit:
            return None
        return max(1, math.ceil((self.window_ms - oldest_age_ms) / 1000))

    async def retry_after(self, client_key: str) -> int | None:
        """Seconds until ``client_key`` may look up again, or ``None`` when it is not blocked."""
        try:
            count, oldest_age_ms = await self.store.count_events(self._key(client_key), self.window_ms)
        except Exception as exc:
            log.error("rate-limit store unavailable (%s); not limiting", type(exc).__name__)
            return None
        return self._wait_seconds(count, oldest_age_ms)

    async def blocked(self, client_key: str) -> bool:
        return await self.retry_after(client_key) is not None

    async def check(self, client_key: str) -> None:
        """Raise `TooManyRequests` (429, ``Retry-After``) while ``client_key`` is blocked."""
        wait = await self.retry_after(client_key)
        if wait is not None:
            raise TooManyRequests(
                f"too many failed lookups from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    async def fail(self, client_key: str) -> None:
        """A failed attempt: raise `TooManyRequests` while the client is blocked already (not counted again),
        else count it."""
        self._recent.note(client_key, self.window_ms / 1000)  # first: from now on its attempts ask the store
        await self.check(client_key)
        wait = await self.record_failure(client_key)
        if wait is not None:
            log.warning("%s attempts from one client blocked for %d s after repeated failures", self.scope, wait)

    async def check_success(self, client_key: str) -> None:
        """Before answering a correct attempt: `check`, when this process saw the client fail within the window."""
        if self._recent.may_be_blocked(client_key):
            await self.check(client_key)

    def success_needs_check(self, client_key: str) -> bool:
        """Whether `check_success` would ask the store for ``client_key`` now (no I/O)."""
        return self._recent.may_be_blocked(client_key)

    async def record_failure(self, client_key: str) -> int | None:
        """Count one failed attempt; answers the seconds the client must now wait, ``None`` if not yet blocked."""
        try:
            count, oldest_age_ms = await self.store.add_event(self._key(client_key), self.window_ms, self.limit)
        except Exception as exc:
            log.error("rate-limit store unavailable (%s); failure not counted", type(exc).__name__)
            return None
        return self._wait_seconds(count, oldest_age_ms)

    async def reset(self, client_key: str) -> None:
        """Forget a client's failures (operator action, tests)."""
        await self.store.delete(self._key(client_key))


__all__ = ["FailureLimiter"]
