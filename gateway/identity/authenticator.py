"""`TokenAuthenticator`: bearer tokens to principals, with a short in-process cache of positive answers.

A revocation takes effect everywhere within ``cache_seconds``, immediately in the process that revoked it
(`forget`). The cache never holds a usable token, only its hash.
"""

from __future__ import annotations

import time

from gateway.identity.principal import Principal
from gateway.identity.tokens import hash_token, principal_for_token
from gateway.storage.database import Database


class TokenAuthenticator:
    """Resolves bearer tokens to principals, with a short in-process cache of positive answers."""

    def __init__(self, db: Database, *, cache_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        now = time.monotonic()
        key = hash_token(token)  # the cache never holds a usable token
        hit = self._cache.get(key)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._cache[key]
        principal = await principal_for_token(self.db, token)
        if principal is not None and self.cache_seconds > 0:
            if len(self._cache) >= self.max_entries:
                self._evict(now)
            self._cache[key] = (now + self.cache_seconds, principal)
        return principal

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached answers (for one token id, or all): call after revoking in this process."""
        if token_id is None:
            self._cache.clear()
            return
        for key in [k for k, (_, p) in self._cache.items() if p.token_id == token_id]:
            del self._cache[key]

    def _evict(self, now: float) -> None:
        expired = [k for k, (until, _) in self._cache.items() if until <= now]
        for key in expired:
            del self._cache[key]
        while len(self._cache) >= self.max_entries:  # still full: drop the oldest insertions
            del self._cache[next(iter(self._cache))]


__all__ = ["TokenAuthenticator"]
