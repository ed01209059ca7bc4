"""Readiness checks: each part that serving needs registers ``name -> async callable`` returning a `Check` in
the application context's ``readiness``; a ``critical`` check that fails makes ``/health/ready`` answer 503."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec


class Check(msgspec.Struct, kw_only=True):
    ok: bool
    critical: bool = False
    detail: str = ""


ReadinessCheck = Callable[[], Awaitable[Check]]

__all__ = ["Check", "ReadinessCheck"]
