"""A run id prefix read as the range [prefix, prefix with its last character incremented)
selects exactly the ids that start with it, on both stores: dashes and the edges of the
range included (the id column sorts bytewise on PostgreSQL whatever its collation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine

from controlplane.store import run_queries
from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_database
from controlplane.store.run_queries import RunSelection
from tests.store.stored_runs import orders_definition, register, save_new_run
from tests.support import databases
from tests.support.databases import ADMIN_URL, database_params, fresh_database, require_postgres

IDS = [
    "0a1e-ffff",
    "0a1f",
    "0a1f-0000",
    "0a1f-ffff",
    "0a1f0000-1111",
    "0a1fffff",
    "0a1g",
    "0a1-",
    "0a1-f",
    "0a10",
    "0a2",
    "ffff-ffff",
]


@pytest.fixture(params=database_params())
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        engine = open_engine(url)
        definition = register(engine, orders_definition())
        for run_id in IDS:
            save_new_run(engine, definition, run_id)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.mark.parametrize(
    "prefix", ["0a1f", "0a1f-", "0a1-", "0a1e", "0a1f-ffff", "ffff", "0a1", "0a"]
)
def test_a_prefix_selects_exactly_the_ids_that_start_with_it(engine: Engine, prefix: str) -> None:
    selection = RunSelection("default", id_prefix=prefix)
    with engine.connect() as connection:
        rows, _ = run_queries.page_of_runs(connection, selection, page_size=100)
        total = run_queries.count_runs(connection, selection)

    expected = {run_id for run_id in IDS if run_id.startswith(prefix)}
    assert {row.id for row in rows} == expected
    assert total == len(expected)


@pytest.fixture
def linguistic_engine() -> Iterator[Engine]:
    """A PostgreSQL database whose own collation ignores punctuation at first (ICU
    `en-u-ka-shifted`, as glibc's en_US does): the dashes of run ids would not sort."""
    require_postgres()
    name = f"sf_test_{uuid.uuid4().hex}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 LOCALE_PROVIDER icu"
                " ICU_LOCALE 'en-u-ka-shifted' LOCALE 'C.UTF-8'"
            ).format(sql.Identifier(name))
        )
    url = databases._sqlalchemy_url(name)
    try:
        upgrade_database(url)
        engine = open_engine(url)
        definition = register(engine, orders_definition())
        for run_id in IDS:
            save_new_run(engine, definition, run_id)
        yield engine
        engine.dispose()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.postgres
def test_prefixes_are_exact_on_a_database_whose_collation_ignores_dashes(
    linguistic_engine: Engine,
) -> None:
    with linguistic_engine.connect() as connection:
        for prefix in ("0a1-", "0a1f-", "0a1e", "0a1f"):
            rows, _ = run_queries.page_of_runs(
                connection, RunSelection("default", id_prefix=prefix)
            )
            assert {row.id for row in rows} == {i for i in IDS if i.startswith(prefix)}, prefix
