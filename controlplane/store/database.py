"""Opening the database: PostgreSQL through psycopg 3, or an SQLite file for the embedded mode."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

# libpq settings a URL may override. Without them a connection to an unroutable server waits
# for the kernel's TCP timeout (minutes) and a half-open one is never noticed, so an RPC
# would hang past its deadline instead of being answered UNAVAILABLE.
POSTGRES_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


def open_engine(url: str, *, pool_size: int = 8) -> Engine:
    """Create an Engine for `url` (postgresql+psycopg://… or sqlite+pysqlite:///path).

    Raises:
        ValueError: for a URL of another database.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {k: v for k, v in POSTGRES_CONNECT_ARGS.items() if k not in parsed.query}
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
    if backend == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) go on while the committer writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # pysqlite's own transaction handling would delay BEGIN; issue it ourselves so that a
    # write transaction takes the write lock up front instead of failing on upgrade. Readers
    # (see `reader`) must not take it: WAL lets them read beside the committer.
    if connection.get_execution_options().get("surefoot_read"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def reader(engine: Engine) -> Engine:
    """The engine for read-only work: on SQLite its transactions do not take the write lock."""
    return engine.execution_options(surefoot_read=True)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def masked(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
