"""A new database's busy tables get their first planner statistics without waiting for
autovacuum (PostgreSQL): once, when they hold enough rows, and never again after that."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from controlplane.store.database import open_engine
from controlplane.store.migrate import upgrade_engine
from controlplane.store.statistics import MIN_ROWS, FirstAnalyze
from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with fresh_database("postgres", tmp_path) as url:
        opened = open_engine(url, pool_size=2)
        try:
            upgrade_engine(opened)
            yield opened
        finally:
            opened.dispose()


def analyzed(engine: Engine, table: str) -> bool:
    with engine.connect() as connection:
        found = connection.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        ).scalar()
    return found is not None


def add_tasks(engine: Engine, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {"id": f"{run}:a:1", "run_id": run, "node_id": "a", "now": now}
        for run in (uuid.uuid4().hex for _ in range(count))
    ]
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO tasks (id, namespace, run_id, node_id, step_type, step_version,"
                " attempt, idempotency_key, input, status, available_at, workflow_name)"
                " VALUES (:id, 'default', :run_id, :node_id, 'work', '1', 1, :id, '{}',"
                " 'ready', :now, 'w')"
            ),
            rows,
        )


@pytest.mark.postgres
def test_a_table_is_analyzed_once_it_holds_enough_rows(engine: Engine) -> None:
    statistics = FirstAnalyze(engine)
    add_tasks(engine, MIN_ROWS // 2)
    assert statistics.check() == [] and not analyzed(engine, "tasks")

    add_tasks(engine, MIN_ROWS)  # the server's counters catch up within moments
    assert_eventually(lambda: statistics.check() == ["tasks"], message="tasks analyzed")
    assert analyzed(engine, "tasks")
    # Once is enough: autovacuum keeps statistics current from there.
    add_tasks(engine, MIN_ROWS * 2)
    assert statistics.check() == []
