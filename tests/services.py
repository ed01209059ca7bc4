"""Where the real PostgreSQL and Redis are, and whether a test may skip when they are missing.

CI sets ``ONEWINDOW_REQUIRE_SERVICES=1``: then a missing service fails the test instead of skipping it.

Under pytest-xdist every worker process gets a Redis database of its own: the configured URL's database
number counted down by the worker's index (``redis://…/15`` gives 15 to ``gw0``, 14 to ``gw1``, …), so that
nothing one worker does to its database can touch another worker's keys. Tests still keep their keys under
a namespace or prefix of their own: other test runs (other checkouts) may share the configured database.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse, urlunparse

import pytest

POSTGRES_URL = os.environ.get("ONEWINDOW_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE = os.environ.get("ONEWINDOW_REQUIRE_SERVICES") == "1"

#: Redis numbers its databases 0 … 15 unless configured otherwise.
REDIS_DATABASES = 16


def worker_index() -> int:
    """0 in a plain pytest run, else this pytest-xdist worker's number (``gw3`` → 3)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def redis_url_for_worker(url: str, index: int) -> str:
    """``url`` with its database number counted down by ``index`` (wrapping within 0 … 15)."""
    parsed = urlparse(url)
    number = parsed.path.lstrip("/")
    if index == 0:
        return url
    if index >= REDIS_DATABASES:
        raise RuntimeError(f"{index + 1} test workers but Redis has only {REDIS_DATABASES} databases; use fewer")
    if not (number == "" or number.isdigit()):
        raise RuntimeError(f"cannot tell the database number in the test Redis URL {url}")
    database = (int(number or 0) - index) % REDIS_DATABASES
    return urlunparse(parsed._replace(path=f"/{database}"))


REDIS_URL = redis_url_for_worker(
    os.environ.get("ONEWINDOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"), worker_index()
)


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
