"""`PreparedRead`: one short read statement, built once, that `Database.fetch` runs without SQLAlchemy's
per-execution machinery.

A hot read (the public tracking lookup, for one) pays far more for the way it reaches SQLite than for the query:
through SQLAlchemy's async engine over aiosqlite every step (connect, begin, execute, fetch, commit) is a round trip
to aiosqlite's worker thread, and every execution rebuilds the statement's cache key. A `PreparedRead` is compiled
once per dialect to its SQL text, its parameters in order with their bind processors, and its result columns with
their result processors (the very functions SQLAlchemy itself would apply, so values come back identical: aware
UTC datetimes, dates, booleans, JSON). `gateway.storage.inline` executes that form with the standard library's
``sqlite3`` on the calling thread; PostgreSQL (and any SQLite call that cannot run inline) executes the original
statement through SQLAlchemy as before.

Rows are named tuples: ``row.status``, ``row[0]``, ``row._mapping["status"]``, ``row._asdict()`` — the subset of
SQLAlchemy's ``Row`` that reads use. Column keys must therefore be distinct identifiers (label the others).

Parameters are named ``bindparam``s; constants written into the statement are fixed::

    TIMELINE = PreparedRead(select(...).where(applications.c.tracking_number == bindparam("number")))
    rows = await db.fetch(TIMELINE, number="4303022026…")

A `KeyedRead` is a read by one key (a tracking number, say) given in two forms: the `PreparedRead` for one key and
the same statement for a list of keys (``column = ANY(:keys)``), whose rows carry the key in one of their columns.
`Database.fetch_keyed` answers one key's rows; on PostgreSQL the lookups of one read that queue up behind queries
in flight go out together as one query of the list form, and its rows are split back per key
(`gateway.storage.pgread`)::

    BY_NUMBER = KeyedRead(
        PreparedRead(query(applications.c.tracking_number == bindparam("number"))),
        PreparedRead(query(applications.c.tracking_number == any_(bindparam("numbers", type_=ARRAY(String))))),
        column="tracking_number",
    )
    rows = await db.fetch_keyed(BY_NUMBER, "4303022026…")
"""

from __future__ import annotations

import collections
import keyword
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

Processor = Callable[[Any], Any]


class ReadRow(Protocol):
    """The static type of a `PreparedRead`'s rows (named tuples at run time)."""

    def __getattr__(self, name: str) -> Any: ...
    def __getitem__(self, index: int) -> Any: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    @property
    def _mapping(self) -> Mapping[str, Any]: ...
    def _asdict(self) -> dict[str, Any]: ...


def _row_type(name: str, keys: Sequence[str]) -> type[tuple[Any, ...]]:
    bad = [k for k in keys if not k.isidentifier() or keyword.iskeyword(k) or k.startswith("_")]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if bad or duplicates:
        raise ValueError(
            f"PreparedRead {name!r}: result columns need distinct identifier names; "
            f"label {sorted(set(bad)) + duplicates} with .label(...)"
        )
    base = collections.namedtuple(name, keys)  # type: ignore[misc]

    def mapping(self: Any) -> Mapping[str, Any]:
        return cast("Mapping[str, Any]", self._asdict())

    return type(name, (base,), {"__slots__": (), "_mapping": property(mapping)})


class CompiledRead:
    """A `PreparedRead` compiled for one dialect with positional parameters (SQLite ``?``, asyncpg ``$n``): SQL
    text, the caller's parameters to the driver's argument list, the driver's rows to converted named tuples."""

    __slots__ = ("arguments", "convert", "sql")

    def __init__(self, sql: str, arguments: Callable[[Mapping[str, Any]], list[Any]], convert: RowMaker) -> None:
        self.sql = sql
        self.arguments = arguments
        self.convert = convert


RowMaker = Callable[[Iterable[Sequence[Any]]], list[ReadRow]]


class PreparedRead:
    """A read statement (``select(...)`` with named ``bindparam``s) prepared for `Database.fetch`.

    Build it once (module level) and reuse it: its compiled forms are cached per database.
    """

    __slots__ = ("name", "optional", "required", "row_type", "statement", "step_budget")

    def __init__(self, statement: Select[Any], *, name: str = "", step_budget: int | None = None) -> None:
        if not isinstance(statement, Select):
            raise TypeError("PreparedRead takes a select(...) statement")
        self.statement = statement
        self.name = name or "PreparedRead"
        #: SQLite inline reads: this statement's budget of VM instructions in thousands, instead of the reader's
        #: default (for a read known to count or walk more than a point lookup does; see `gateway.storage.inline`).
        self.step_budget = step_budget
        keys = [str(column.key) for column in statement.selected_columns]
        self.row_type = _row_type("ReadRow", keys)
        required: set[str] = set()
        optional: set[str] = set()
        for bind in _named_binds(statement):
            (required if bind.required else optional).add(bind.key)
        self.required = frozenset(required)
        self.optional = frozenset(optional)

    def __repr__(self) -> str:
        return f"PreparedRead({self.name!r})"

    def check(self, params: Mapping[str, Any]) -> None:
        """Raise `TypeError` unless ``params`` names every parameter the statement needs and nothing else."""
        names = params.keys()
        if names == self.required:
            return
        missing = self.required - names
        unknown = names - self.required - self.optional
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing {sorted(missing)}")
            if unknown:
                parts.append(f"unknown {sorted(unknown)}")
            raise TypeError(f"{self.name}: parameters {', '.join(parts)}")

    def rows(self, result: Iterable[Sequence[Any]]) -> list[ReadRow]:
        """Rows of an already converted result (SQLAlchemy's rows) as this read's named tuples."""
        make = self.row_type._make  # type: ignore[attr-defined]
        return [make(row) for row in result]

    def compiled_form(self, dialect: Dialect) -> CompiledRead | None:
        """The statement compiled for ``dialect`` (a positional paramstyle: SQLite, asyncpg), or ``None`` when it
        uses something only SQLAlchemy's execution can render (expanding ``IN`` lists, post-compile parameters)."""
        compiled = self.statement.compile(dialect=dialect)
        order = compiled.positiontup
        if order is None or compiled.post_compile_params or compiled.literal_execute_params:
            return None
        slots: list[tuple[str, Processor | None, Any, Callable[[], Any] | None]] = []
        for key in order:
            bind = compiled.binds.get(key)
            if bind is None or bind.expanding:
                return None
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            slots.append((key if not bind.unique else "", processor, bind.value, bind.callable))
        return CompiledRead(compiled.string, _arguments(tuple(slots)), self._row_maker(dialect))

    def _row_maker(self, dialect: Dialect) -> RowMaker:
        converters = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        ]
        make = self.row_type._make  # type: ignore[attr-defined]
        if not any(converters):
            return lambda raw: [make(row) for row in raw]
        pairs = [(i, fn) for i, fn in enumerate(converters) if fn is not None]

        def convert(raw: Iterable[Sequence[Any]]) -> list[ReadRow]:
            out = []
            previous: Sequence[Any] = ()
            converted: list[Any] = []
            for row in raw:
                values = list(row)
                for i, fn in pairs:
                    # A join repeats the parent's columns on every row: convert each distinct value once.
                    value = values[i]
                    if previous and type(previous[i]) is type(value) and previous[i] == value:
                        values[i] = converted[i]
                    else:
                        values[i] = fn(value)
                out.append(make(values))
                previous, converted = row, values
            return out

        return convert


class KeyedRead:
    """One read by a key in two forms: ``one`` (its one parameter is the key) and ``many`` (its one parameter is a
    list of keys), the same result columns, ``column`` among them holding the key each row belongs to.

    The two must select the rows of one key alike (``many``'s rows for a key are exactly ``one``'s for that key, in
    the same order): `Database.fetch_keyed` answers from either. ``batch_limit``: at most this many keys per query
    of ``many``.
    """

    __slots__ = ("batch_limit", "column", "index", "key", "keys", "many", "name", "one")

    def __init__(self, one: PreparedRead, many: PreparedRead, *, column: str, batch_limit: int = 64) -> None:
        if len(one.required) != 1 or len(many.required) != 1 or one.optional or many.optional:
            raise ValueError(f"KeyedRead {one.name!r}: each form takes exactly one parameter (the key, the keys)")
        fields = one.row_type._fields  # type: ignore[attr-defined]
        if fields != many.row_type._fields:  # type: ignore[attr-defined]
            raise ValueError(f"KeyedRead {one.name!r}: both forms must select the same columns")
        if column not in fields:
            raise ValueError(f"KeyedRead {one.name!r}: the key column {column!r} is not selected")
        if batch_limit < 1:
            raise ValueError(f"KeyedRead {one.name!r}: batch_limit must be at least 1")
        self.one = one
        self.many = many
        self.name = one.name
        (self.key,) = one.required
        (self.keys,) = many.required
        self.column = column
        #: The key column's position in a row.
        self.index: int = fields.index(column)
        self.batch_limit = batch_limit

    def __repr__(self) -> str:
        return f"KeyedRead({self.name!r})"


def _named_binds(statement: Select[Any]) -> Iterator[BindParameter[Any]]:
    """The statement's parameters a caller may name (anonymous ones hold the constants written into it)."""
    for bind in statement.compile().binds.values():
        if not bind.unique:
            yield bind


def _arguments(
    slots: tuple[tuple[str, Processor | None, Any, Callable[[], Any] | None], ...],
) -> Callable[[Mapping[str, Any]], list[Any]]:
    """A function from the caller's parameters to the positional argument list, bind processors applied."""

    def arguments(params: Mapping[str, Any]) -> list[Any]:
        out = []
        for key, processor, value, produce in slots:
            if key and key in params:
                value = params[key]
            elif produce is not None:
                value = produce()
            out.append(processor(value) if processor is not None else value)
        return out

    return arguments


__all__ = ["CompiledRead", "KeyedRead", "PreparedRead", "ReadRow"]
