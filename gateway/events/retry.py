"""When a failed delivery is tried again: exponential back-off with jitter, over about three days.

The n-th retry waits ``RETRY_SCHEDULE[n-1]`` seconds, give or take a fifth at random (jitter spreads the retries
of a burst that failed together, so a receiver coming back is not hit by all of them in the same second). After
the last one — 13 attempts, about 2.8 days after the first — the delivery is a dead letter, listed and replayable.
``time_scale`` (``Settings.webhook_time_scale``) multiplies every interval: the drills compress an hour into
seconds with it.
"""

from __future__ import annotations

import datetime as dt
import random

#: Seconds before the 1st, 2nd, … retry: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, 12 h, 16 h, 24 h.
RETRY_SCHEDULE: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 57600, 86400)
#: Attempts in all (the first and every retry).
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
#: How long a delivery is retried at most (the schedule's sum); older ones become dead letters.
RETRY_WINDOW_SECONDS = sum(RETRY_SCHEDULE)
JITTER = 0.2


def retry_delay(attempts: int, *, time_scale: float = 1.0, rng: random.Random | None = None) -> float | None:
    """Seconds to wait after the ``attempts``-th failed attempt, or None when no attempt is left."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE[max(attempts, 1) - 1]
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return base * spread * time_scale


def retry_window(time_scale: float = 1.0) -> dt.timedelta:
    return dt.timedelta(seconds=RETRY_WINDOW_SECONDS * time_scale * (1 + JITTER))


__all__ = ["JITTER", "MAX_ATTEMPTS", "RETRY_SCHEDULE", "RETRY_WINDOW_SECONDS", "retry_delay", "retry_window"]
