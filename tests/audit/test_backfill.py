"""Revision 0009 chains the histories of runs recorded before it, a chunk of runs at a time:
afterwards every older run verifies, and its row holds the hash its next event chains from."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from controlplane.audit.chain import GENESIS, event_hash
from controlplane.store import audit_queries
from controlplane.store.database import open_engine
from controlplane.store.migrate import alembic_config
from tests.support.databases import fresh_database

T0 = datetime(2026, 1, 1, 9, 30, 0, 250000, tzinfo=UTC)
# More runs than the migration chains per chunk, so that it takes several chunks.
RUNS = 450
KINDS = ("RUN_STARTED", "STEP_SCHEDULED", "ATTEMPT_COMPLETED")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path, migrated=False) as url:
        yield url


def run_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def old_rows() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs, events = [], []
    for n in range(RUNS):
        runs.append(
            {
                "id": run_id(n),
                "namespace": "default",
                "definition_id": 1,
                "workflow_name": "older",
                "workflow_version": "1",
                "status": "COMPLETED",
                "input": "{}",
                "state": json.dumps({"completions": 0, "steps": {}}),
                "last_seq": len(KINDS),
                "trace_id": "0" * 32,
                "created_at": T0,
                "updated_at": T0,
            }
        )
        for seq, kind in enumerate(KINDS, 1):
            events.append(
                {
                    "run_id": run_id(n),
                    "seq": seq,
                    "type": kind,
                    "time": T0 + timedelta(seconds=seq, microseconds=n),
                    "node_id": "" if seq == 1 else "a",
                    "attempt": 0 if seq == 1 else 1,
                    "principal": "ops" if seq == 1 else "worker-1",
                    "data": json.dumps({"n": n, "seq": seq}),
                }
            )
    return runs, events


def test_older_runs_are_chained_by_the_migration_and_verify(empty_url: str) -> None:
    engine = open_engine(empty_url, pool_size=1)
    metadata = sa.MetaData()
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0008")
            # The tables as revision 0008 left them: no hash columns yet.
            metadata.reflect(connection, only=["definitions", "runs", "history"])
            connection.execute(
                metadata.tables["definitions"].insert(),
                {
                    "id": 1,
                    "namespace": "default",
                    "name": "older",
                    "version": "1",
                    "sequence": 1,
                    "content_hash": "0" * 64,
                    "body": b"",
                    "created_at": T0,
                },
            )
            runs, events = old_rows()
            connection.execute(metadata.tables["runs"].insert(), runs)
            connection.execute(metadata.tables["history"].insert(), events)
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")

        with engine.connect() as connection:
            ids = [run_id(n) for n in range(RUNS)]
            verdicts = audit_queries.verify_runs(connection, "default", ids)
            heads = {
                r.id: r.last_hash
                for r in connection.execute(sa.text("SELECT id, last_hash FROM runs"))
            }
            first = connection.execute(
                sa.text("SELECT * FROM history WHERE run_id = :r ORDER BY seq"), {"r": ids[0]}
            ).all()
    finally:
        engine.dispose()

    assert [v.run_id for v in verdicts] == ids
    assert all(v.ok and v.events == len(KINDS) for v in verdicts), [
        v for v in verdicts if not v.ok
    ][:3]
    assert all(heads[v.run_id] == v.head_hash for v in verdicts)
    # The chain is the documented one, recomputable from the rows by anyone.
    previous = GENESIS
    for row in first:
        previous = event_hash(
            previous,
            row.run_id,
            row.seq,
            row.type,
            _aware(row.time),
            row.node_id,
            row.attempt,
            row.principal,
            row.data,
        )
        assert row.hash == previous
    assert heads[ids[0]] == previous


def _aware(value: Any) -> datetime:
    # Read through plain SQL: SQLite gives back text, PostgreSQL an aware datetime.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
