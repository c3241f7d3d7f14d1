"""Fixtures for the store tests: an empty or migrated database of every kind the store supports.

Each test runs twice: on an SQLite file (the embedded default) and on a PostgreSQL database of
its own, created for the test and dropped after it, so that tests never see each other's rows
and the two dialects are held to the same behaviour. Without a reachable PostgreSQL server the
PostgreSQL half is skipped on a workstation, but fails under CI (env CI set), where a skipped
half would hide a dialect bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_engine
from tests.support.databases import fresh_database


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_database_url(database_kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables at all, of each supported kind."""
    with fresh_database(database_kind, tmp_path, migrated=False) as url:
        yield url


@pytest.fixture
def engine(database_kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An Engine on a database migrated to the newest revision, as the server opens it (the
    copy of the session's migrated template: opening it finds nothing left to migrate)."""
    with fresh_database(database_kind, tmp_path) as url:
        yield from _opened(url)


def _opened(url: str) -> Iterator[Engine]:
    engine = open_engine(url, pool_size=2)
    try:
        upgrade_engine(engine)
        yield engine
    finally:
        engine.dispose()
