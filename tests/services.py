"""Where the real PostgreSQL and Redis are, and whether a test may skip when they are missing.

CI sets ``ONEWINDOW_REQUIRE_SERVICES=1``: then a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get("ONEWINDOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("ONEWINDOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE = os.environ.get("ONEWINDOW_REQUIRE_SERVICES") == "1"


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), timeout=1):
            return True
    except OSError:
        return False


def need(url: str, what: str) -> str:
    """Return ``url`` if the service answers; else skip (or fail when services are required)."""
    if _reachable(url):
        return url
    message = f"{what} is not reachable at {url}"
    if REQUIRE:
        pytest.fail(message + " and ONEWINDOW_REQUIRE_SERVICES=1")
    pytest.skip(message)
