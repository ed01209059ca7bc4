"""Scenarios that must run on a real clock without flaking on a busy machine.

Some behaviour can only be seen on a real clock: Redis scores rate-limit events and expires keys on the server's
time. A scenario that relies on two steps happening *close together* ("both failures fall inside one 0.4 s
window") fails whenever the machine stalls between them, although nothing is wrong. So such a scenario measures
those gaps itself (`Run.check`) and `timely` runs it again, on fresh keys, until one run kept to its timing; only
that run's observations are asserted on. Gaps in the other direction ("at least 0.4 s later") need no check:
a stall only makes them longer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


class Run:
    """One run of a timed scenario: ``number`` tells runs apart (use it in keys), `check` notes a late gap."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.kept = True

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def check(self, since: float, seconds: float) -> None:
        """Note whether less than ``seconds`` have passed since ``since`` (a reading of `now`)."""
        if time.monotonic() - since >= seconds:
            self.kept = False


async def timely(scenario: Callable[[Run], Awaitable[T]], *, tries: int = 5) -> T:
    """What ``scenario`` observed in its first run that kept to its timing (a failed assertion inside a run
    fails at once: put the assertions that depend on timing after this call)."""
    for number in range(tries):
        run = Run(number)
        observed = await scenario(run)
        if run.kept:
            return observed
    pytest.fail(f"the machine was too busy: none of {tries} runs kept to the timing the scenario needs")
