"""Writing many rows with one statement per table.

On PostgreSQL each batch is sent as column arrays through `unnest`: the statement text is
the same for every batch (prepared once by psycopg) and no per-row SQL is compiled or parsed,
which is what lets one commit checkpoint hundreds of steps. Arrays go in binary (`%b`): the
text format would escape every element, JSON documents included, in Python. SQLite, in
process, takes the rows through SQLAlchemy's executemany.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    LargeBinary,
    Table,
    any_,
    bindparam,
)

from controlplane.store.types import UtcDateTime


def _array_type(column: Column[Any]) -> str:
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return "timestamptz[]"
    if isinstance(kind, BigInteger):
        return "int8[]"
    if isinstance(kind, Integer):
        return "int4[]"
    if isinstance(kind, Boolean):
        return "bool[]"
    if isinstance(kind, LargeBinary):
        return "bytea[]"
    return "text[]"


@cache
def _insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    arrays = ", ".join(f"%b::{_array_type(table.c[name])}" for name in columns)
    return f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"


@cache
def _update_sql(table: Table, key: str, columns: tuple[str, ...]) -> str:
    names = (key, *columns)
    arrays = ", ".join(f"%b::{_array_type(table.c[name])}" for name in names)
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    return (
        f"UPDATE {table.name} SET {assignments} FROM unnest({arrays}) AS v({', '.join(names)})"
        f" WHERE {table.name}.{key} = v.{key}"
    )


def _is_postgres(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (dicts with the same keys)."""
    if not rows:
        return
    if not _is_postgres(connection):
        connection.execute(table.insert(), rows)
        return
    columns = tuple(rows[0])
    arrays = tuple([row[name] for row in rows] for name in columns)
    connection.exec_driver_sql(_insert_sql(table, columns), arrays)


def update_rows(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """Update rows matched by `key`; every dict has the key and the same columns."""
    if not rows:
        return
    columns = tuple(name for name in rows[0] if name != key)
    if not _is_postgres(connection):
        statement = (
            table.update()
            .where(table.c[key] == bindparam("b_key"))
            .values({name: bindparam(name) for name in columns})
        )
        connection.execute(statement, [row | {"b_key": row[key]} for row in rows])
        return
    arrays = tuple([row[name] for row in rows] for name in (key, *columns))
    connection.exec_driver_sql(_update_sql(table, key, columns), arrays)


def among(connection: Connection, column: Column[Any], values: Sequence[Any]) -> Any:
    """`column IN (values)`. On PostgreSQL as one array parameter (`= ANY`): the statement's
    text is then the same whatever the number of values, so psycopg converts (and prepares)
    it once, where an IN list is a new statement text for every length."""
    if not _is_postgres(connection):
        return column.in_(values)
    name = f"{column.table.name}_{column.name}_values"  # type: ignore[attr-defined]
    return column == any_(bindparam(name, list(values), type_=ARRAY(column.type)))


def delete_rows(connection: Connection, table: Table, key: str, values: list[Any]) -> None:
    if not values:
        return
    if not _is_postgres(connection):
        for start in range(0, len(values), 500):
            chunk = values[start : start + 500]
            connection.execute(table.delete().where(table.c[key].in_(chunk)))
        return
    array_type = _array_type(table.c[key])
    connection.exec_driver_sql(
        f"DELETE FROM {table.name} WHERE {key} = ANY(%b::{array_type})", (values,)
    )
