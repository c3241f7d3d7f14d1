"""A fresh database per test: a SQLite file, or a PostgreSQL database made and dropped for it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

# The machines run PostgreSQL at 127.0.0.1:5432 with trust auth; a developer can point the
# tests elsewhere without editing them.
ADMIN_URL = os.environ.get(
    "SUREFOOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
KINDS = ("sqlite", "postgres")


class PostgresUnavailable(Exception):
    pass


def check_postgres() -> None:
    """Raises PostgresUnavailable, with the driver's reason, if the server cannot be used."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise PostgresUnavailable(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}") from exc


def require_postgres() -> None:
    """Skips the test when PostgreSQL is unreachable, or fails it when CI is set.

    In CI a skipped PostgreSQL test would turn a broken database setup into a green build.
    """
    try:
        check_postgres()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI is set: PostgreSQL tests must run)")
        pytest.skip(str(exc))


def _sqlalchemy_url(database: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(ADMIN_URL)
    user = info.get("user") or "postgres"
    password = f":{info['password']}" if info.get("password") else ""
    host = info.get("host") or "127.0.0.1"
    port = info.get("port") or "5432"
    return f"postgresql+psycopg://{user}{password}@{host}:{port}/{database}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Creates `sf_test_<hex>`, yields its SQLAlchemy URL, then drops it, connections and all."""
    name = f"sf_test_{uuid.uuid4().hex}"
    with psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _sqlalchemy_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, connect_timeout=5, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextmanager
def fresh_database(kind: str, directory: Path) -> Iterator[str]:
    """The URL of a new, empty database of `kind` ("sqlite" files live in `directory`)."""
    if kind == "sqlite":
        yield f"sqlite+pysqlite:///{directory / 'surefoot.db'}"
    elif kind == "postgres":
        require_postgres()
        with fresh_postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown database kind {kind!r}")


def database_params() -> list[object]:
    """pytest params over both stores; the PostgreSQL one carries the `postgres` mark."""
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
