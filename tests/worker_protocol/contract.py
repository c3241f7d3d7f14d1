"""What the worker protocol tests share: a one-step workflow and raw streams on a real
control plane process (tests/support/raw_worker.py), so that each message is exactly what
the case needs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import register

STEP = "contract-step"
WORKFLOW = "contract"


def register_one_step(server: ControlPlane, retry: dict[str, Any] | None = None) -> None:
    task: dict[str, Any] = {"step_type": STEP, "input": "input", "idempotency": "key"}
    if retry is not None:
        task["retry"] = retry
    register(
        server.stub,
        definition_from_dict(
            {"name": WORKFLOW, "version": "1", "nodes": [{"id": "work", "task": task}]}
        ),
    )


def open_stream(server: ControlPlane, worker_id: str, credit: int = 1) -> RawWorkerStream:
    stream = RawWorkerStream(server.channel, worker_id, [declaration(STEP)], credit)
    stream.next_of("welcome")
    return stream


def messages_until_refused(stream: RawWorkerStream, probe: str) -> list[wpb.ServerMessage]:
    """Sends a heartbeat for a task nobody holds and returns what arrived before its Refused:
    everything the control plane queued for the stream before that round trip."""
    stream.heartbeat(probe)
    seen: list[wpb.ServerMessage] = []
    while True:
        message = stream.next_message()
        if message.WhichOneof("message") == "refused" and message.refused.task_id == probe:
            return seen
        seen.append(message)


def messages_until(stream: RawWorkerStream, kind: str) -> list[wpb.ServerMessage]:
    """The messages received up to and including the next one of `kind`."""
    seen: list[wpb.ServerMessage] = []
    while True:
        message = stream.next_message()
        seen.append(message)
        if message.WhichOneof("message") == kind:
            return seen


def kinds(messages: list[wpb.ServerMessage]) -> list[str]:
    return [str(m.WhichOneof("message")) for m in messages]


def counts(database_url: str) -> dict[str, int]:
    """Rows of the tables a worker message could write."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table: int(
                    connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                )
                for table in ("history", "step_types", "tasks", "runs", "definitions")
            }
    finally:
        engine.dispose()


def task_rows(database_url: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    sa.text(
                        "SELECT id, status, session_id, worker_id, lease_expires_at FROM tasks "
                        "ORDER BY id"
                    )
                )
            ]
    finally:
        engine.dispose()
