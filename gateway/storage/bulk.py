"""`BulkWrite`: one INSERT / UPDATE / DELETE / upsert, built once, run for many rows with the driver's executemany.

SQLAlchemy's own ``conn.execute(statement, rows)`` does, per row, what a bulk load does not need: it checks each
row's keys against the statement, runs the column types' bind processors through its execution context and keeps
per-parameter-set bookkeeping — on SQLite that costs more than SQLite's own insert. A `BulkWrite` compiles the
statement once per dialect to its SQL text, the order of its parameters and their bind processors (the very
functions SQLAlchemy would apply, so what is stored does not change), and `Database.execute_many` hands the
converted rows to the driver's ``executemany`` on the connection of the caller's `Database.transaction` — so the
rows commit or roll back with everything else in it::

    UPSERT = BulkWrite(insert_statement.on_conflict_do_update(...), name="things.upsert")   # once
    rows = db.bulk_rows(UPSERT, dicts)               # optional: convert now, before the write transaction opens
    async with db.transaction() as conn:
        written = await db.execute_many(conn, UPSERT, rows)   # or the dicts themselves
        await audit.append(conn, ...)

Rules:

* every row names every parameter of the statement: the table's columns for a plain ``table.insert()``, the
  ``bindparam`` names otherwise. Python-side column defaults and ``onupdate`` values are not applied (they belong
  to SQLAlchemy's execution context): give them in the rows. Constants written into the statement stay fixed;
* no ``RETURNING``, no expanding ``IN`` lists (use ``conn.execute`` for those);
* the count returned is the rows the driver reports as written (SQLite: inserted, updated or deleted; an upsert's
  skipped conflicts are not counted); ``-1`` when the driver does not tell — asyncpg's ``executemany`` on
  PostgreSQL with more than one row.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.sql.dml import Delete, Insert, Update

Processor = Callable[[Any], Any]
Row = Mapping[str, Any]

_MISSING = object()


class CompiledWrite:
    """A `BulkWrite` compiled for one dialect: the SQL text and rows -> the driver's positional parameters."""

    __slots__ = ("_constants", "_get", "_keys", "_name", "_processed", "sql")

    def __init__(self, write: BulkWrite, dialect: Dialect) -> None:
        compiled = write.statement.compile(dialect=dialect)
        order = compiled.positiontup
        if order is None:
            raise ValueError(f"{write.name}: {dialect.name}'s parameter style is not positional")
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError(f"{write.name}: expanding or literal parameters are rendered per execution; use execute")
        self.sql = compiled.string
        self._name = write.name
        binds = compiled.binds
        keys: list[str] = []
        #: position -> value of a constant written into the statement (an anonymous parameter).
        self._constants: dict[int, Any] = {}
        processors: list[Processor | None] = []
        for position, name in enumerate(order):
            bind = binds[name]
            if bind.expanding:
                raise ValueError(f"{write.name}: expanding IN parameters are rendered per execution; use execute")
            processors.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
            if bind.unique:  # a constant of the statement, not something a row gives
                self._constants[position] = bind.effective_value
                keys.append("")
            else:
                keys.append(bind.key)
        self._keys = keys
        wanted = [key for key in keys if key]
        getter = operator.itemgetter(*wanted) if wanted else None
        if getter is None:
            self._get: Callable[[Row], tuple[Any, ...]] = lambda _row: ()
        elif len(wanted) == 1:
            self._get = lambda row: (getter(row),)
        else:
            self._get = getter
        #: (position, processor) of the values that need converting (dates, times, JSON); the rest go as they are.
        self._processed = [(i, p) for i, p in enumerate(processors) if p is not None]

    def parameters(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        """The driver's parameters for ``rows`` (each row's values in the statement's order, converted)."""
        get = self._get
        processed = self._processed
        constants = self._constants
        if not processed and not constants:
            try:
                return [tuple(get(row)) for row in rows]
            except KeyError as exc:
                raise self._lacks(exc) from None
        # A batch often repeats values (one fetch time, the same dates): convert each distinct value once.
        memo: list[dict[Any, Any]] = [{} for _ in processed]
        out: list[tuple[Any, ...]] = []
        for row in rows:
            try:
                values = list(get(row))
            except KeyError as exc:
                raise self._lacks(exc) from None
            if constants:
                values = self._with_constants(values)
            for (position, process), seen in zip(processed, memo, strict=True):
                value = values[position]
                try:
                    converted = seen.get(value, _MISSING)
                    if converted is _MISSING:
                        converted = seen[value] = process(value)
                except TypeError:  # unhashable (a JSON document): convert it every time
                    converted = process(value)
                values[position] = converted
            out.append(tuple(values))
        return out

    def _lacks(self, exc: KeyError) -> ValueError:
        return ValueError(f"{self._name}: a row lacks {exc.args[0]!r} (rows give every parameter)")

    def _with_constants(self, values: list[Any]) -> list[Any]:
        # The getter returned the row's values only: put the statement's constants in their places.
        merged: list[Any] = []
        given = iter(values)
        for position, key in enumerate(self._keys):
            merged.append(next(given) if key else self._constants[position])
        return merged


class BulkWrite:
    """A data-changing statement (``insert``, ``update``, ``delete``, an upsert) prepared for
    `Database.execute_many`. Build it once and reuse it: its compiled forms are kept per dialect."""

    __slots__ = ("_forms", "name", "statement")

    def __init__(self, statement: Insert | Update | Delete, *, name: str = "") -> None:
        if not isinstance(statement, Insert | Update | Delete):
            raise TypeError("BulkWrite takes an insert(), update() or delete() statement")
        if len(statement.exported_columns):
            raise ValueError("BulkWrite runs executemany, which returns no rows: drop the RETURNING clause")
        self.statement = statement
        self.name = name or "BulkWrite"
        self._forms: dict[Dialect, CompiledWrite] = {}

    def __repr__(self) -> str:
        return f"BulkWrite({self.name!r})"

    def compiled(self, dialect: Dialect) -> CompiledWrite:
        """The statement compiled for ``dialect`` (once)."""
        form = self._forms.get(dialect)
        if form is None:
            form = self._forms[dialect] = CompiledWrite(self, dialect)
        return form


class BulkRows:
    """Rows of one `BulkWrite` already converted to the driver's parameters for one database (`Database.bulk_rows`)."""

    __slots__ = ("dialect", "parameters", "write")

    def __init__(self, write: BulkWrite, dialect: Dialect, parameters: list[tuple[Any, ...]]) -> None:
        self.write = write
        self.dialect = dialect
        self.parameters = parameters

    def __len__(self) -> int:
        return len(self.parameters)


__all__ = ["BulkRows", "BulkWrite", "CompiledWrite"]
