"""Which columns hold encrypted personal data, declared by the domain that owns each table.

A domain calls `register_encrypted_column` next to its table definition (``gateway/<domain>/tables.py``)::

    applicants = sa.Table("applicants", metadata, sa.Column("id", sa.String(36), primary_key=True),
                          sa.Column("name", sa.Text), ...)
    register_encrypted_column("applicants", "name")

`onewindow keys rotate` and `keys status` walk this registry, so privacy never imports a domain. Registering
the same column twice is harmless; a column registered with two different id columns is an error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class EncryptedColumn:
    """``table.column`` holds `FieldCipher` tokens whose associated data uses ``str(<id_column>)`` as row id."""

    table: str
    column: str
    id_column: str = "id"


_lock = threading.Lock()
_columns: dict[tuple[str, str], EncryptedColumn] = {}


def register_encrypted_column(table_name: str, column_name: str, id_column: str = "id") -> EncryptedColumn:
    """Declare that ``table_name.column_name`` is encrypted with the row's ``id_column`` in its associated data."""
    entry = EncryptedColumn(table_name, column_name, id_column)
    with _lock:
        existing = _columns.get((table_name, column_name))
        if existing is not None and existing != entry:
            raise ValueError(f"{table_name}.{column_name} is already registered with id column {existing.id_column!r}")
        _columns[(table_name, column_name)] = entry
    return entry


def unregister_encrypted_column(table_name: str, column_name: str) -> None:
    """Forget a column (tests that register temporary tables)."""
    with _lock:
        _columns.pop((table_name, column_name), None)


def encrypted_columns() -> tuple[EncryptedColumn, ...]:
    """Every registered column, sorted by table then column."""
    with _lock:
        return tuple(sorted(_columns.values()))


def encrypted_tables() -> dict[str, tuple[str, tuple[str, ...]]]:
    """``table -> (id column, encrypted columns)``. A table's columns must share one id column."""
    tables: dict[str, tuple[str, list[str]]] = {}
    for entry in encrypted_columns():
        id_column, columns = tables.setdefault(entry.table, (entry.id_column, []))
        if id_column != entry.id_column:
            raise ValueError(f"table {entry.table!r} registers columns with two id columns")
        columns.append(entry.column)
    return {table: (id_column, tuple(columns)) for table, (id_column, columns) in tables.items()}


__all__ = [
    "EncryptedColumn",
    "encrypted_columns",
    "encrypted_tables",
    "register_encrypted_column",
    "unregister_encrypted_column",
]
