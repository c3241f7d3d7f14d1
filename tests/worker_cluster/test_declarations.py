"""A step type's declaration is a contract (law 6): once `name@version` is registered, a Hello
declaring it differently is refused, naming the difference, and changes nothing; and a
declaration made through one control plane is what the other schedules from next."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text
from surefoot.v1 import common_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream
from tests.support.runs import events_of, history, register, start_run

pytestmark = pytest.mark.postgres


def declared(
    name: str,
    version: str,
    idempotency: common_pb2.Idempotency.ValueType,
    attempts: int,
) -> common_pb2.StepTypeDeclaration:
    return common_pb2.StepTypeDeclaration(
        name=name,
        version=version,
        idempotency=idempotency,
        retry=common_pb2.RetryPolicy(max_attempts=attempts, initial_interval_seconds=0.5),
    )


def hello(plane: ControlPlane, worker_id: str, *steps: common_pb2.StepTypeDeclaration) -> None:
    """A worker that says Hello, is welcomed, and goes away."""
    stream = RawWorkerStream(plane.channel, worker_id, steps)
    stream.next_of("welcome")
    stream.close()
    assert stream.wait_ended() is None


def stored(database_url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT name, version, idempotency, retry, description, updated_at"
                    " FROM step_types ORDER BY name, version"
                )
            )
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def sessions(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(text("SELECT count(*) FROM worker_sessions")).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_declaration_under_a_used_version_is_refused_naming_the_difference(
    planes: list[ControlPlane],
) -> None:
    here, there = planes
    hello(here, "first", declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 2))
    before = stored(here.database_url)
    open_sessions = sessions(here.database_url)

    # Through the other control plane, as a redeploy behind a load balancer would: the same
    # version declared otherwise, beside a step type nobody declared yet.
    stream = RawWorkerStream(
        there.channel,
        "redeployed",
        [
            declared("refund", "1", common_pb2.IDEMPOTENCY_KEY, 3),
            declared("charge", "1", common_pb2.IDEMPOTENCY_NONE, 4),
        ],
    )
    error = stream.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert not [m for m in stream.received if m.WhichOneof("message") == "welcome"]
    details = error.details() or ""
    assert "charge@1" in details
    assert "idempotency: registered key, declared none" in details
    assert "retry.max_attempts: registered 2, declared 4" in details
    # Nothing written: not the new step type of the same Hello, not a session.
    assert stored(here.database_url) == before
    assert sessions(here.database_url) == open_sessions

    # Declaring it as it is, or leaving a field at the default it stands for, is no change.
    hello(there, "same", declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 2))
    [row] = stored(here.database_url)
    assert row[:4] == before[0][:4]


WORKFLOW = "declared-by-worker"


def test_a_new_declaration_through_one_plane_schedules_the_next_tasks_on_the_other(
    planes: list[ControlPlane],
) -> None:
    here, there = planes
    hello(here, "v1", declared("charge", "1", common_pb2.IDEMPOTENCY_KEY, 1))
    register(
        there.stub,
        definition_from_dict(
            {
                "name": WORKFLOW,
                "version": "1",
                # No version and no idempotency: both come from what workers declared.
                "nodes": [{"id": "charge", "task": {"step_type": "charge", "input": "input"}}],
            }
        ),
    )
    first = start_run(there.stub, WORKFLOW, {})
    [scheduled] = events_of(history(there.stub, first), "STEP_SCHEDULED")
    assert scheduled.data["idempotency"] == "key"

    # A redeploy declares version 2 through the first control plane; the very next run
    # entering through the other is scheduled from it, not from a snapshot of before.
    hello(here, "v2", declared("charge", "2", common_pb2.IDEMPOTENCY_NONE, 4))
    second = start_run(there.stub, WORKFLOW, {})
    [scheduled] = events_of(history(there.stub, second), "STEP_SCHEDULED")
    assert scheduled.data["idempotency"] == "none"
