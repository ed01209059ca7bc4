"""`KeyedRead` and `Database.fetch_keyed`: one key's rows, exactly as `fetch` of the one-key form gives them — on
PostgreSQL the lookups that queue up together go out as one ``= ANY`` query, on SQLite the lookups of one turn of the
event loop as one inline ``IN (…)`` statement, whose rows are split back per key. Real SQLite and PostgreSQL (the
scratch tables of test_prepared_reads)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping

import pytest
from sqlalchemy import (
    ARRAY,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ColumnElement

from gateway.storage import Database, KeyedRead, PreparedRead
from gateway.storage.inline import BATCH_FROM, InlineReader
from gateway.storage.pgread import PostgresReader
from gateway.storage.prepared import ReadRow
from tests.gateway.storage.test_prepared_reads import _scratch_tables, tags, things

KINDS = bindparam("kinds", type_=ARRAY(String))


def _by_kind(kind: ColumnElement[bool], slow: ColumnElement[bool]) -> PreparedRead:
    """Things of a kind, with their tags (a join: several rows per thing); a row of kind ``slow`` takes a second
    (``pg_sleep`` on PostgreSQL; the SQLite form never sleeps)."""
    return PreparedRead(
        select(
            things.c.kind,
            things.c.id,
            things.c.amount,
            things.c.at,
            things.c.extra,
            tags.c.tag,
            things.c.due,
        )
        .outerjoin(tags, tags.c.thing_id == things.c.id)
        .where(kind, things.c.id != "hidden", slow)
        .order_by(things.c.id, tags.c.tag),
        name="test.things_by_kind",
    )


def _slow(asked: ColumnElement[bool]) -> ColumnElement[bool]:
    """A second's sleep on the row of kind "slow" when it was ``asked`` for (in whatever order PostgreSQL tests the
    conditions); pg_sleep returns void: cast to text it is '' and the condition true once the second has passed."""
    return cast(func.pg_sleep(case((and_(things.c.kind == "slow", asked), 1.0), else_=0)), String) == ""


BY_KIND = KeyedRead(
    _by_kind(things.c.kind == bindparam("kind"), literal(True)),
    _by_kind(things.c.kind == any_(KINDS), literal(True)),
    column="kind",
)
#: The same on PostgreSQL, where a query that includes the kind "slow" takes a second.
SLOW_BY_KIND = KeyedRead(
    _by_kind(things.c.kind == bindparam("kind"), _slow(bindparam("kind") == "slow")),
    _by_kind(things.c.kind == any_(KINDS), _slow(literal("slow") == any_(KINDS))),
    column="kind",
)


async def _more_things(db: Database, kinds: int) -> None:
    """Things of ``kinds`` more kinds (``kind-0`` …; kind-n has n % 3 things) and one of kind ``slow``."""
    rows = [
        {"id": f"t{n}-{i}", "kind": f"kind-{n}", "amount": n, "flag": True, "due": None, "at": None, "extra": None}
        for n in range(kinds)
        for i in range(n % 3)
    ]
    rows.append({"id": "s", "kind": "slow", "amount": 0, "flag": True, "due": None, "at": None, "extra": None})
    async with db.transaction() as conn:
        await conn.execute(insert(things), rows)
        await conn.execute(insert(tags), [{"thing_id": "t2-0", "tag": "x"}, {"thing_id": "t2-1", "tag": "y"}])


async def _one_by_one(db: Database, keys: list[str]) -> dict[str, list[tuple[object, ...]]]:
    return {key: [tuple(r) for r in await db.fetch(BY_KIND.one, kind=key)] for key in set(keys)}


def _inline(db: Database) -> InlineReader:
    if db.inline is None:
        pytest.skip("inline batched reads: SQLite")
    return db.inline


def _reader(db: Database) -> PostgresReader:
    if db.pg_reader is None:
        pytest.skip("batched reads: PostgreSQL")
    return db.pg_reader


@pytest.fixture
def tagged_reader(database: Database) -> Iterator[str]:
    """This reader's connections named apart on the server (pg_stat_activity), for tests that look at them."""
    name = f"onewindow-test-{uuid.uuid4().hex[:12]}"
    _reader(database)._server_settings["application_name"] = name
    yield name


def test_keyed_read_checks_its_forms() -> None:
    with pytest.raises(ValueError, match="same columns"):
        KeyedRead(BY_KIND.one, PreparedRead(select(things.c.kind).where(things.c.kind == any_(KINDS))), column="kind")
    with pytest.raises(ValueError, match="not selected"):
        KeyedRead(BY_KIND.one, BY_KIND.many, column="flag")
    with pytest.raises(ValueError, match="exactly one parameter"):
        KeyedRead(BY_KIND.one, PreparedRead(select(things.c.kind)), column="kind")
    assert (BY_KIND.key, BY_KIND.keys, BY_KIND.index) == ("kind", "kinds", 0)


async def test_concurrent_lookups_get_what_fetch_gives_each_key(database: Database) -> None:
    """Different and repeated keys, keys with no rows, several rows per key: every lookup its own key's rows, in
    the one-key form's order, as `fetch` gives them — on PostgreSQL from a few shared queries."""
    await _scratch_tables(database)
    await _more_things(database, 150)
    keys = [f"kind-{n}" for n in range(150)] + ["k", "k", "other", "nothing", "kind-2", "kind-2", "nothing"]
    expected = await _one_by_one(database, keys)
    assert expected["kind-0"] == expected["nothing"] == [] and len(expected["kind-2"]) == 2
    queries = database.pg_reader.served if database.pg_reader is not None else 0
    statements = database.inline.served if database.inline is not None else 0
    answers = await asyncio.gather(*(database.fetch_keyed(BY_KIND, key) for key in keys))
    assert [[tuple(r) for r in rows] for rows in answers] == [expected[key] for key in keys]
    assert answers[-2] is not answers[-3], "each lookup gets a list of its own"
    assert answers[-2][1].kind == "kind-2" and answers[-2][1]._mapping["tag"] == "y"
    if database.pg_reader is not None:
        # 153 distinct keys arrived in one turn of the loop: three queries of at most 64 keys.
        assert database.pg_reader.served - queries == 3 and database.pg_reader.deferred == 0
        assert not database.pg_reader._for_loop().batches[BY_KIND].pending
    else:
        # The first BATCH_FROM lookups of the turn read alone; the others together, in statements of at most 64.
        inline = _inline(database)
        assert inline.served - statements == BATCH_FROM + 3 and inline.deferred == 0
        # The next such turn goes together from its first lookup: 64 + 64 + 25 keys, three statements.
        statements, batched = inline.served, inline.batched
        again = await asyncio.gather(*(database.fetch_keyed(BY_KIND, key) for key in keys))
        assert [[tuple(r) for r in rows] for rows in again] == [expected[key] for key in keys]
        assert (inline.served - statements, inline.batched - batched) == (3, 153)
    # One at a time, each its own query, answered as soon as it is asked.
    for key in ("k", "nothing", "kind-5"):
        assert [tuple(r) for r in await database.fetch_keyed(BY_KIND, key)] == expected[key]


async def test_each_lookup_reads_after_it_was_asked(database: Database) -> None:
    """Nothing is kept: a change committed before a lookup is asked is in its answer, whatever batch answers it."""
    await _scratch_tables(database)
    for amount in range(1, 6):
        async with database.transaction() as conn:
            await conn.execute(things.update().where(things.c.id == "a").values(amount=amount))
        answers = await asyncio.gather(*(database.fetch_keyed(BY_KIND, "k") for _ in range(20)))
        assert all(rows[0].amount == amount for rows in answers)


async def test_a_lookup_does_not_wait_behind_a_query_in_flight(database: Database) -> None:
    """While a connection is free, a lookup goes out at once: it does not wait for the slow query in flight."""
    await _scratch_tables(database)
    await _more_things(database, 3)
    _reader(database)
    slow = asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, "slow"))
    await asyncio.sleep(0.2)  # the slow query is in flight
    async with asyncio.timeout(0.6):
        assert [r.id for r in await database.fetch_keyed(SLOW_BY_KIND, "k")] == ["a", "a", "b"]
    assert not slow.done()
    assert [r.id for r in await slow] == ["s"]


async def test_lookups_queue_up_behind_busy_connections_and_go_out_together(database: Database) -> None:
    await _scratch_tables(database)
    await _more_things(database, 3)
    reader = _reader(database)
    # Every connection busy with a slow query (one per batch: each takes all that waits when it starts) …
    slow = []
    for _ in range(reader.max_connections):
        slow.append(asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, "slow")))
        await asyncio.sleep(0.05)
    queries = reader.served
    # … so these wait for the first connection released, and share one query.
    waiting = [asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, key)) for key in ("k", "other", "k", "none")]
    await asyncio.sleep(0.2)
    batches = reader._for_loop().batches[SLOW_BY_KIND]
    assert batches.running == reader.max_connections and set(batches.pending) == {"k", "other", "none"}
    answers = await asyncio.gather(*waiting)
    assert [[r.id for r in rows] for rows in answers] == [["a", "a", "b"], ["c"], ["a", "a", "b"], []]
    assert all([r.id for r in rows] == ["s"] for rows in await asyncio.gather(*slow))
    assert reader.served - queries == reader.max_connections + 1


async def test_a_cancelled_lookup_leaves_the_query_to_the_others(database: Database, tagged_reader: str) -> None:
    await _scratch_tables(database)
    await _more_things(database, 3)
    reader = _reader(database)
    # Asked in one turn of the loop: one query for both keys, a slow one.
    gone = asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, "slow"))
    staying = asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, "k"))
    await asyncio.sleep(0.3)
    conns = reader._for_loop()
    assert conns.size == 1 and not conns.idle, "the batch query is in flight"
    gone.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert [r.id for r in await staying] == ["a", "a", "b"]
    assert conns.size == len(conns.idle) == 1, "the query ran to its end: its connection is kept"
    assert reader.served >= 1 and reader.deferred == 0


async def test_lookups_all_gone_before_their_batch_starts_are_not_queried(database: Database) -> None:
    await _scratch_tables(database)
    reader = _reader(database)
    queries = reader.served
    lookups = [asyncio.create_task(database.fetch_keyed(BY_KIND, "k")) for _ in range(3)]
    await asyncio.sleep(0)  # asked, not yet taken
    for lookup in lookups:
        lookup.cancel()
    await asyncio.gather(*lookups, return_exceptions=True)
    await asyncio.sleep(0.05)
    assert reader.served == queries
    assert [r.id for r in await database.fetch_keyed(BY_KIND, "k")] == ["a", "a", "b"]


async def test_a_batch_whose_connection_is_killed_is_answered_by_the_engine(
    database: Database, tagged_reader: str
) -> None:
    """The batch query fails (its backend terminated): each lookup gets what a single failed read gives — the
    engine's answer — and the broken connection is dropped."""
    await _scratch_tables(database)
    await _more_things(database, 3)
    reader = _reader(database)
    keys = ["slow", "k", "other", "none", "k"]
    lookups = [asyncio.create_task(database.fetch_keyed(SLOW_BY_KIND, key)) for key in keys]
    running = text(
        "SELECT pid FROM pg_stat_activity WHERE application_name = :name AND state = 'active' "
        "AND query LIKE '%pg_sleep%'"
    )
    async with asyncio.timeout(10):
        while True:
            async with database.read() as conn:
                pids = (await conn.execute(running, {"name": tagged_reader})).scalars().all()
            if pids:
                break
            await asyncio.sleep(0.02)
    async with database.transaction() as conn:
        kill = text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:pids AS int[])) AS pid")
        await conn.execute(kill, {"pids": pids})
    answers = await asyncio.gather(*lookups)
    assert [[r.id for r in rows] for rows in answers] == [["s"], ["a", "a", "b"], ["c"], [], ["a", "a", "b"]]
    conns = reader._for_loop()
    assert reader.deferred == 1 and conns.size == len(conns.idle) == 0
    # The reader opens a new connection for the next batch.
    assert [r.id for r in await database.fetch_keyed(BY_KIND, "other")] == ["c"]
    assert reader.deferred == 1 and conns.size == 1


async def test_a_failing_read_raises_the_engines_error_in_every_lookup(database: Database) -> None:
    missing = Table("scratch_missing", MetaData(), Column("kind", String(20)), Column("n", Integer))
    read = KeyedRead(
        PreparedRead(select(missing).where(missing.c.kind == bindparam("kind")), name="test.missing"),
        PreparedRead(select(missing).where(missing.c.kind == any_(KINDS)), name="test.missing_batch"),
        column="kind",
    )
    results = await asyncio.gather(*(database.fetch_keyed(read, k) for k in "abca"), return_exceptions=True)
    assert all(isinstance(r, DBAPIError) and "scratch_missing" in str(r) for r in results), results
    if database.pg_reader is not None:
        assert database.pg_reader.deferred == 1, "one batch failed; the engine answered each lookup"


async def test_lookups_asked_as_the_reader_closes_are_answered(database: Database) -> None:
    await _scratch_tables(database)
    reader = _reader(database)
    lookups = [asyncio.create_task(database.fetch_keyed(BY_KIND, key)) for key in ("k", "other")]
    await asyncio.sleep(0)  # asked, not yet taken
    await reader.close()
    assert [[r.id for r in rows] for rows in await asyncio.gather(*lookups)] == [["a", "a", "b"], ["c"]]


async def _burst(db: Database, read: KeyedRead, keys: list[str]) -> list[list[ReadRow]]:
    """Lookups asked in one turn of the loop (tasks started together)."""
    return await asyncio.gather(*(db.fetch_keyed(read, key) for key in keys))


async def test_sqlite_reads_lone_lookups_alone_and_a_busy_turns_lookups_together(database: Database) -> None:
    await _scratch_tables(database)
    await _more_things(database, 5)
    inline = _inline(database)
    served, batched = inline.served, inline.batched
    for _ in range(5):  # one at a time (a turn of the loop each): each its own statement at once, never a batch
        assert [r.id for r in await database.fetch_keyed(BY_KIND, "k")] == ["a", "a", "b"]
        await asyncio.sleep(0)
    assert (inline.served - served, inline.batched - batched) == (5, 0)
    assert inline._turns_of(asyncio.get_running_loop(), BY_KIND).pending is None
    # A burst: the first BATCH_FROM lookups of the turn read alone, the others together (4 distinct keys, 1 statement).
    keys = ["k", "kind-4", "none", "k", "kind-4", "kind-1", "other", "none"]
    answers = await _burst(database, BY_KIND, keys)
    expected = await _one_by_one(database, keys)
    assert [[tuple(r) for r in rows] for rows in answers] == [expected[key] for key in keys]
    assert expected["kind-4"] and expected["other"] and expected["none"] == []
    served, batched = inline.served, inline.batched
    # The turns are busy now: the next burst goes together from its first lookup (3 + 2 keys padded to 8).
    answers = await _burst(database, BY_KIND, keys)
    assert [[tuple(r) for r in rows] for rows in answers] == [expected[key] for key in keys]
    assert (inline.served - served, inline.batched - batched) == (1, 5)
    assert answers[0] is not answers[3], "each lookup gets a list of its own"
    # Quiet again: after a few lone turns lookups read alone once more, without waiting for a turn.
    for _ in range(5):
        await database.fetch_keyed(BY_KIND, "k")
        await asyncio.sleep(0)
    assert inline.batches(BY_KIND) is False


async def test_sqlite_leaves_out_a_lookup_cancelled_before_its_batch(database: Database) -> None:
    await _scratch_tables(database)
    inline = _inline(database)
    await _burst(database, BY_KIND, ["k"] * (2 * BATCH_FROM))  # busy turns: the next lookups are batched
    batched = inline.batched
    gone = asyncio.create_task(database.fetch_keyed(BY_KIND, "other"))
    staying = [asyncio.create_task(database.fetch_keyed(BY_KIND, key)) for key in ("k", "nothing")]
    await asyncio.sleep(0)  # all three asked, the batch not yet run
    gone.cancel()
    assert [[r.id for r in rows] for rows in await asyncio.gather(*staying)] == [["a", "a", "b"], []]
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert inline.batched - batched == 2


async def test_sqlite_reads_alone_what_it_cannot_batch(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-key form that uses its key more than once has no batch form, and a batch the reader cannot run (here:
    busy) is answered by each lookup's own read — the same rows either way."""
    await _scratch_tables(database)
    inline = _inline(database)
    columns = select(things.c.kind, things.c.id).order_by(things.c.id)
    twice = KeyedRead(
        PreparedRead(columns.where(things.c.kind == bindparam("kind"), bindparam("kind") != "x")),
        PreparedRead(columns.where(things.c.kind == any_(KINDS))),
        column="kind",
    )
    keys = ["k", "other", "x", "k", "other", "x"]
    served, batched = inline.served, inline.batched
    for _ in range(2):
        answers = await _burst(database, twice, keys)
        assert [[r.id for r in rows] for rows in answers] == [["a", "b", "hidden"], ["c"], []] * 2
    assert (inline.served - served, inline.batched - batched) == (12, 0)
    fetch = inline.fetch

    def busy_for_batches(query: PreparedRead, params: Mapping[str, object]) -> list[ReadRow] | None:
        return fetch(query, params) if query is BY_KIND.one else None  # the batch form (… IN …): busy

    monkeypatch.setattr(inline, "fetch", busy_for_batches)
    for _ in range(2):
        answers = await _burst(database, BY_KIND, ["k", "other", "none", "k", "other", "none"])
        assert [[r.id for r in rows] for rows in answers] == [["a", "a", "b"], ["c"], []] * 2
    assert inline.batched == batched
