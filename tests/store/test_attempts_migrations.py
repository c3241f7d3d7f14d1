"""The attempts of runs recorded before revision 0006 reach GetRun: 0006 projects them from
the history into a table, 0007 folds that table into each run's state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import Engine, inspect, text
from surefoot.v1 import run_pb2

from controlplane.api.convert import run_detail
from controlplane.store import schema
from controlplane.store.database import open_engine
from controlplane.store.migrate import alembic_config
from controlplane.store.run_queries import get_run

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


def run_row(steps: dict[str, dict[str, object]]) -> dict[str, object]:
    return {
        "id": "run-before-0006",
        "namespace": "default",
        "definition_id": 1,
        "workflow_name": "orders",
        "workflow_version": "1",
        "status": "COMPLETED",
        "input": "{}",
        "state": json.dumps({"completions": 1, "steps": steps}),
        "last_seq": 6,
        "trace_id": "0" * 32,
        "created_at": T0,
        "updated_at": T0,
    }


def step(node_id: str, attempt: int, status: str) -> dict[str, object]:
    return {
        "node_id": node_id,
        "step_type": node_id,
        "step_version": "",
        "status": status,
        "attempt": attempt,
        "idempotency_key": f"run-before-0006:{node_id}",
        "idempotency": "key",
        "retry": {},
        "input": {},
        "scheduled_at": T0.timestamp(),
    }


def shown_run(engine: Engine) -> run_pb2.Run:
    with engine.connect() as connection:
        view = get_run(connection, "default", "run-before-0006")
    assert view is not None
    return run_detail(view)


def test_attempts_of_older_runs_reach_the_runs_state(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url, pool_size=1)
    error = {"type": "Timeout", "message": "slow", "retryable": True, "details": ""}
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "0005")
            connection.execute(
                schema.definitions.insert(),
                [
                    {
                        "id": 1,
                        "namespace": "default",
                        "name": "orders",
                        "version": "1",
                        "sequence": 1,
                        "content_hash": "0" * 64,
                        "body": b"",
                        "created_at": T0,
                    }
                ],
            )
            steps = {"charge": step("charge", 2, "COMPLETED"), "ship": step("ship", 1, "RUNNING")}
            connection.execute(schema.runs.insert(), [run_row(steps)])
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
        run = shown_run(engine)
        with engine.connect() as connection:
            assert "attempts" not in inspect(connection).get_table_names()

        # Down to 0006 and up again: the table comes back from the states, and goes again.
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0006")
        with engine.connect() as connection:
            assert len(connection.execute(text("SELECT * FROM attempts")).all()) == 3
            state = connection.execute(text("SELECT state FROM runs")).scalar_one()
            assert "finished_attempts" not in state
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
        assert shown_run(engine) == run
    finally:
        engine.dispose()

    shown = [
        (
            s.node_id,
            a.number,
            a.worker_id,
            run_pb2.AttemptOutcome.Name(a.outcome),
            (a.error.type, a.error.message) if a.HasField("error") else None,
        )
        for s in run.steps
        for a in s.attempts
    ]
    assert shown == [
        ("charge", 1, "w-1", "ATTEMPT_OUTCOME_FAILED", ("Timeout", "slow")),
        ("charge", 2, "w-2", "ATTEMPT_OUTCOME_COMPLETED", None),
        ("ship", 1, "worker-1", "ATTEMPT_OUTCOME_LOST", ("AttemptLost", "lease expired")),
    ]
    first = run.steps[0].attempts[0]
    assert first.started_at.ToDatetime(UTC) == T0 + timedelta(seconds=2)
    assert first.ended_at.ToDatetime(UTC) == T0 + timedelta(seconds=3)
    assert not run.steps[1].attempts[0].HasField("started_at")
