"""Revision 0006 projects the attempts of runs recorded before it, from their history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import select

from controlplane.store import schema
from controlplane.store.codec import load_json
from controlplane.store.database import open_engine
from controlplane.store.migrate import alembic_config

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(seq: int, kind: str, node_id: str, attempt: int, **data: object) -> dict[str, object]:
    return {
        "run_id": "run-before-0006",
        "seq": seq,
        "type": kind,
        "time": T0 + timedelta(seconds=seq),
        "node_id": node_id,
        "attempt": attempt,
        "principal": "worker-1",
        "data": json.dumps(data),
    }


def test_attempts_of_older_runs_are_projected_from_history(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url, pool_size=1)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
            error = {"type": "Timeout", "message": "slow", "retryable": True, "details": ""}
            connection.execute(
                schema.history.insert(),
                [
                    event(1, "RUN_STARTED", "", 0),
                    event(2, "ATTEMPT_STARTED", "charge", 1, worker_id="w-1", task_id="t1"),
                    event(3, "ATTEMPT_FAILED", "charge", 1, error=error),
                    event(4, "ATTEMPT_STARTED", "charge", 2, worker_id="w-2", task_id="t2"),
                    event(5, "ATTEMPT_COMPLETED", "charge", 2, output={"ok": True}),
                    event(6, "ATTEMPT_LOST", "ship", 1, reason="lease expired"),
                ],
            )
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")

        with engine.connect() as connection:
            rows = connection.execute(
                select(schema.attempts).order_by(
                    schema.attempts.c.node_id, schema.attempts.c.attempt
                )
            ).all()
    finally:
        engine.dispose()

    shown = [
        (r.node_id, r.attempt, r.worker_id, r.outcome, load_json(r.error) if r.error else None)
        for r in rows
    ]
    assert shown == [
        ("charge", 1, "w-1", "FAILED", error),
        ("charge", 2, "w-2", "COMPLETED", None),
        ("ship", 1, "worker-1", "LOST", {"type": "AttemptLost", "message": "lease expired"}),
    ]
    assert rows[0].started_at == T0 + timedelta(seconds=2)
    assert rows[0].ended_at == T0 + timedelta(seconds=3)
    assert rows[2].started_at is None
