"""Fixtures for the store tests: an empty or migrated database of every kind the store supports.

Each test runs twice: on an SQLite file (the embedded default) and on a PostgreSQL database of
its own, created for the test and dropped after it, so that tests never see each other's rows
and the two dialects are held to the same behaviour. Without a reachable PostgreSQL server the
PostgreSQL half is skipped on a workstation, but fails under CI (env CI set), where a skipped
half would hide a dialect bug.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_engine

# The machines run PostgreSQL at 127.0.0.1:5432 with trust auth; the same variable as the
# end-to-end tests points the tests at another server.
POSTGRES_SERVER = os.environ.get(
    "SUREFOOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

_unreachable: list[str] = []


def _server() -> psycopg.Connection:
    """An autocommit connection to the server (CREATE/DROP DATABASE refuse transactions)."""
    if _unreachable:
        _skip_or_fail(_unreachable[0])
    try:
        return psycopg.connect(POSTGRES_SERVER, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        # Remembered so that every other test does not wait for the same timeout.
        _unreachable.append(str(exc).strip())
        _skip_or_fail(_unreachable[0])


def _skip_or_fail(reason: str) -> NoReturn:
    message = f"PostgreSQL at {make_url(POSTGRES_SERVER)!r} is unreachable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _postgres_database() -> Iterator[str]:
    name = f"surefoot_test_{uuid.uuid4().hex[:16]}"
    with _server() as server:
        server.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_url(POSTGRES_SERVER).set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with _server() as server:
            # FORCE: a test that failed half-way may have left a connection open.
            server.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all, of each supported kind."""
    if request.param == "sqlite":
        yield f"sqlite+pysqlite:///{tmp_path / 'surefoot.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    """An Engine on a database migrated to the newest revision, as the server opens it."""
    engine = open_engine(empty_database_url, pool_size=2)
    try:
        upgrade_engine(engine)
        yield engine
    finally:
        engine.dispose()
