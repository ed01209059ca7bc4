"""Each pytest-xdist worker's Redis database (tests/services.py)."""

from __future__ import annotations

import pytest

from tests.services import redis_url_for_worker


def test_workers_count_down_from_the_configured_database() -> None:
    url = "redis://127.0.0.1:6379/15"
    assert [redis_url_for_worker(url, i) for i in range(3)] == [
        "redis://127.0.0.1:6379/15",
        "redis://127.0.0.1:6379/14",
        "redis://127.0.0.1:6379/13",
    ]
    assert redis_url_for_worker("redis://:secret@10.0.0.5:6380/1", 2) == "redis://:secret@10.0.0.5:6380/15"
    assert redis_url_for_worker("redis://127.0.0.1:6379", 1) == "redis://127.0.0.1:6379/15"


def test_more_workers_than_databases_is_refused() -> None:
    with pytest.raises(RuntimeError, match="16 databases"):
        redis_url_for_worker("redis://127.0.0.1:6379/15", 16)
    with pytest.raises(RuntimeError, match="database number"):
        redis_url_for_worker("redis://127.0.0.1:6379/db?x=1", 1)
