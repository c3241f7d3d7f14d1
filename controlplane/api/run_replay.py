"""GetRunAt: a run's state as of one of its history events (engine/replay.py derives it)."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import Connection, Row, select
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.api.runs import no_run
from controlplane.engine import state as s
from controlplane.engine.flow import describe_wait
from controlplane.engine.replay import RecordedEvent, Replayed, state_at
from controlplane.store import run_queries
from controlplane.store.codec import load_json, to_epoch
from controlplane.store.schema import runs


async def get_at(
    backend: Backend, request: ws.GetRunAtRequest, context: grpc.aio.ServicerContext
) -> ws.GetRunAtResponse:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if request.seq < 1:
        raise errors.InvalidArgument.field("seq", "must be 1 or more (the first event is 1)")

    def query(c: Connection) -> tuple[int, list[Row[Any]]] | None:
        last_seq = c.execute(
            select(runs.c.last_seq).where(
                runs.c.id == request.run_id, runs.c.namespace == namespace
            )
        ).scalar()
        if last_seq is None:
            return None
        if request.seq > last_seq:
            return int(last_seq), []
        return int(last_seq), run_queries.read_history(c, request.run_id, 0, request.seq)

    found = await backend.read(query)
    if found is None:
        raise errors.NotFound(no_run(request.run_id, namespace))
    last_seq, rows = found
    if not rows:
        raise errors.InvalidArgument.field("seq", f"is beyond the run's last event ({last_seq})")
    replayed = state_at(request.run_id, namespace, (recorded(row) for row in rows))
    return ws.GetRunAtResponse(snapshot=snapshot(replayed, rows[-1], last_seq))


def recorded(row: Row[Any]) -> RecordedEvent:
    return RecordedEvent(
        seq=row.seq,
        type=row.type,
        time=to_epoch(row.time),
        node_id=row.node_id,
        attempt=row.attempt,
        principal=row.principal,
        data=load_json(row.data) or {},
    )


def snapshot(replayed: Replayed, last: Row[Any], last_seq: int) -> run_pb2.RunSnapshot:
    run = replayed.state
    message = run_pb2.RunSnapshot(
        run_id=run.id,
        seq=replayed.seq,
        time=convert.timestamp(last.time),
        last_seq=last_seq,
        event=convert.history_event(last),
        status=run_pb2.RunStatus.Value(f"RUN_STATUS_{run.status}"),
        input=convert.payload(run.input),
        output=convert.payload(run.output) if run.status == s.COMPLETED else None,
        last_error=convert.step_error(run.last_error),
        current_node=run.current_node or "",
        steps=[_step(step) for step in run.steps.values()],
        notes=replayed.notes,
    )
    if run.paused is not None:
        message.paused.paused_by = str(run.paused.get("by", ""))
        message.paused.reason = str(run.paused.get("reason", ""))
    return message


def _step(step: s.StepState) -> run_pb2.Step:
    attempts = [
        run_pb2.Attempt(
            number=a["number"],
            worker_id=a["worker_id"],
            started_at=convert.timestamp(a["started_at"]),
            ended_at=convert.timestamp(a["ended_at"]),
            outcome=run_pb2.AttemptOutcome.Value(f"ATTEMPT_OUTCOME_{a['outcome']}"),
            error=convert.step_error(a["error"]),
        )
        for a in step.finished_attempts
    ]
    if step.status == s.STEP_RUNNING:
        attempts.append(
            run_pb2.Attempt(
                number=step.attempt,
                worker_id=str(step.data.get("worker_id", "")),
                started_at=convert.timestamp(step.data.get("started_at")),
                outcome=run_pb2.ATTEMPT_OUTCOME_RUNNING,
            )
        )
    waiting = ""
    if step.status == s.STEP_WAITING:
        try:
            waiting = describe_wait(step)
        except (KeyError, TypeError, ValueError):
            waiting = step.kind  # a wait whose facts history does not keep in full
    return run_pb2.Step(
        node_id=step.node_id,
        step_type=step.step_type,
        status=run_pb2.StepStatus.Value(f"STEP_STATUS_{step.status}"),
        attempt=step.attempt,
        idempotency_key=step.idempotency_key,
        input=convert.payload(step.input),
        output=convert.payload(step.output) if step.status == s.STEP_COMPLETED else None,
        last_error=convert.step_error(step.last_error),
        scheduled_at=convert.timestamp(step.scheduled_at),
        next_attempt_at=convert.timestamp(step.next_attempt_at),
        attempts=attempts,
        kind=step.kind,
        waiting_for=waiting,
    )
