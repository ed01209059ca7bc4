"""The application context: built from the settings, filled in by the lifespans, one Redis client shared."""

from __future__ import annotations

import msgspec
import pytest

from connectors.breaker import RedisBreakerStore
from gateway.app import create_app
from gateway.context import AppContext, NotStarted, context_of
from gateway.settings import Settings
from gateway.storage import Database


def test_parts_set_by_lifespans_say_which_one_before_it_ran(settings: Settings) -> None:
    context = AppContext.from_settings(settings)
    with pytest.raises(NotStarted, match="database_lifespan"):
        _ = context.database
    with pytest.raises(NotStarted, match="identity_lifespan"):
        _ = context.authenticator
    with pytest.raises(NotStarted, match="audit_lifespan"):
        _ = context.audit_signer
    assert context.certificates is None and context.redis is None
    assert list(context.readiness) == ["stores"]  # memory stores, reported as such; the lifespans add the rest


async def test_lifespans_fill_in_the_context_and_share_one_redis_client(db_settings: Settings, redis_url: str) -> None:
    app = create_app(msgspec.structs.replace(db_settings, redis_url=redis_url))
    context = context_of(app)
    assert ("redis" in context.readiness) == bool(redis_url)
    async with app.lifespan():
        assert isinstance(context.database, Database)
        assert context.authenticator.db is context.database
        assert context.audit_signer.public_key
        assert context.certificates is not None and context.certificate_store is not None
        assert context.connectors is not None
        if redis_url:
            # The stores, the failure limiter and the connectors' breakers all talk through the same client.
            assert context.redis is not None
            assert context.tracking_limiter.store is context.stores.rate_limit
            breakers = context.connectors.breaker_store
            assert isinstance(breakers, RedisBreakerStore) and breakers.redis is context.redis
        assert {"database", "departments"} <= context.readiness.keys()
