"""PostgreSQL advisory locks of one deployment's schema.

Advisory locks belong to the whole database, not to a schema. Two gateways whose tables live in two schemas of one
database (``Settings.database_schema``: a staging and a live deployment, or tests isolated per schema) would
otherwise wait for each other's audit chain and daily counters, and one's fan-out would skip its round while the
other fans out. Each key is therefore combined (exclusive or) with a hash of the connection's current schema, in
SQL, so callers keep their constant keys and need not know the schema. Two schemas' keys meet only by a hash
collision, and then they merely take turns.

The migration lock stays database-wide (`gateway.storage.database.MIGRATION_LOCK_KEY`): it is taken before the
schema exists, when there is no current schema to hash.

Use the fragments inside ``text()``::

    text(f"SELECT pg_advisory_xact_lock({lock_key('key')})")                  # one bigint key
    text(f"SELECT pg_advisory_xact_lock({lock_space('space')}, :turn)")       # an int4 space and an int4 key
"""

from __future__ import annotations

from typing import Final

#: The schema the locks belong to ('' if ``search_path`` names none that exists).
_SCHEMA: Final = "coalesce(current_schema(), '')"


def lock_key(param: str) -> str:
    """SQL for the bigint key ``:param`` of this schema (for ``pg_advisory_xact_lock(bigint)``)."""
    return f"(:{param} # hashtextextended({_SCHEMA}, 0))"


def lock_space(param: str) -> str:
    """SQL for the int4 space ``:param`` of this schema (the first argument of ``pg_advisory_xact_lock(int, int)``)."""
    return f"(:{param} # hashtext({_SCHEMA}))"


__all__ = ["lock_key", "lock_space"]
