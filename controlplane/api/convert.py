"""Database rows to surefoot.v1 messages."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row
from surefoot.v1 import approval_pb2, common_pb2, run_pb2

from controlplane.engine import state as s
from controlplane.engine.flow import describe_wait
from controlplane.store.codec import load_json, to_datetime
from controlplane.store.run_queries import RunView

JSON = "json/plain"

_OUTCOMES = {
    "COMPLETED": run_pb2.ATTEMPT_OUTCOME_COMPLETED,
    "FAILED": run_pb2.ATTEMPT_OUTCOME_FAILED,
    "LOST": run_pb2.ATTEMPT_OUTCOME_LOST,
    "CANCELLED": run_pb2.ATTEMPT_OUTCOME_CANCELLED,
}


def payload(value: Any) -> common_pb2.Payload:
    return common_pb2.Payload(encoding=JSON, data=json.dumps(value).encode())


def payload_text(text: str | None) -> common_pb2.Payload | None:
    return None if text is None else common_pb2.Payload(encoding=JSON, data=text.encode())


def timestamp(value: datetime | float | None) -> Timestamp | None:
    if value is None:
        return None
    result = Timestamp()
    result.FromDatetime(to_datetime(value) if isinstance(value, float | int) else value)
    return result


def step_error(error: dict[str, Any] | None) -> run_pb2.StepError | None:
    if not error:
        return None
    return run_pb2.StepError(
        type=str(error.get("type", "")),
        message=str(error.get("message", "")),
        retryable=bool(error.get("retryable", False)),
        details=str(error.get("details", "")),
    )


def run_summary(row: Row[Any]) -> run_pb2.Run:
    """The run without its steps (for lists)."""
    return run_pb2.Run(
        id=row.id,
        namespace=row.namespace,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=run_pb2.RunStatus.Value(f"RUN_STATUS_{row.status}"),
        input=payload_text(row.input),
        output=payload_text(row.output),
        request_id=row.request_id or "",
        created_at=timestamp(row.created_at),
        updated_at=timestamp(row.updated_at),
        closed_at=timestamp(row.closed_at),
        last_error=step_error(load_json(row.last_error)),
        current_node=row.current_node or "",
        trace_id=row.trace_id,
        waiting_for=row.waiting_for or "",
        waiting_since=timestamp(row.waiting_since),
    )


def run_detail(view: RunView) -> run_pb2.Run:
    """The run with every step and attempt: steps and their finished attempts from the run's
    state, and what is happening right now from the task rows."""
    run = run_summary(view.run)
    saved = load_json(view.run.state)
    _, steps = s.RunState.steps_from_json(saved)
    paused = s.RunState.paused_from_json(saved)
    if paused is not None:
        run.paused.paused_by = str(paused.get("by", ""))
        run.paused.reason = str(paused.get("reason", ""))
        if (since := timestamp(paused.get("since"))) is not None:
            run.paused_at.CopyFrom(since)
    live = {(t.node_id, t.attempt): t for t in view.tasks}
    waiting: list[str] = []
    for node_id, step in steps.items():
        status = step.status
        task = live.get((node_id, step.attempt))
        node_attempts = _finished(step)
        if task is not None and task.status == "leased" and status in s.OPEN_STEP:
            status = s.STEP_RUNNING
            node_attempts.setdefault(
                step.attempt,
                run_pb2.Attempt(
                    number=step.attempt,
                    worker_id=task.worker_id or "",
                    started_at=timestamp(task.leased_at),
                    outcome=run_pb2.ATTEMPT_OUTCOME_RUNNING,
                    details=_heartbeat_details(task),
                ),
            )
        elif task is not None and task.status == "ready" and status in s.OPEN_STEP:
            wanted = (
                f"{step.step_type}@{step.step_version}" if step.step_version else step.step_type
            )
            waiting.append(f"step {node_id!r}: a worker that implements {wanted}")
        run.steps.append(
            run_pb2.Step(
                node_id=node_id,
                step_type=step.step_type,
                status=run_pb2.StepStatus.Value(f"STEP_STATUS_{status}"),
                attempt=step.attempt,
                idempotency_key=step.idempotency_key,
                input=payload(step.input),
                output=payload(step.output) if step.status == s.STEP_COMPLETED else None,
                last_error=step_error(step.last_error),
                scheduled_at=timestamp(step.scheduled_at),
                next_attempt_at=timestamp(step.next_attempt_at),
                attempts=[node_attempts[n] for n in sorted(node_attempts)],
                kind=step.kind,
                waiting_for=describe_wait(step) if step.status == s.STEP_WAITING else "",
            )
        )
    if waiting and not run.waiting_for:
        run.waiting_for = "; ".join(waiting)
    return run


def _finished(step: s.StepState) -> dict[int, run_pb2.Attempt]:
    """A step's finished attempts by number, as the run's state keeps them."""
    return {
        a["number"]: run_pb2.Attempt(
            number=a["number"],
            worker_id=a["worker_id"],
            started_at=timestamp(a["started_at"]),
            ended_at=timestamp(a["ended_at"]),
            outcome=_OUTCOMES.get(a["outcome"], run_pb2.ATTEMPT_OUTCOME_RUNNING),
            error=step_error(a["error"]),
        )
        for a in step.finished_attempts
    }


def _heartbeat_details(task: Row[Any]) -> common_pb2.Payload | None:
    data = task._mapping.get("heartbeat_details")
    if data is None:
        return None
    return common_pb2.Payload(encoding=task.heartbeat_encoding or "", data=bytes(data))


def history_event(row: Row[Any]) -> run_pb2.HistoryEvent:
    return run_pb2.HistoryEvent(
        run_id=row.run_id,
        seq=row.seq,
        type=run_pb2.EventType.Value(f"EVENT_TYPE_{row.type}"),
        time=timestamp(row.time),
        node_id=row.node_id,
        attempt=row.attempt,
        principal=row.principal,
        data=payload_text(row.data),
    )


def approval(row: Any) -> approval_pb2.Approval:
    """An approvals row (a mapping) as the API shows it."""
    return approval_pb2.Approval(
        id=row["id"],
        namespace=row["namespace"],
        run_id=row["run_id"],
        node_id=row["node_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        title=row["title"],
        approvers=json.loads(row["approvers"]),
        shown=payload_text(row["shown"]),
        status=approval_pb2.ApprovalStatus.Value(f"APPROVAL_STATUS_{row['status']}"),
        requested_at=timestamp(row["requested_at"]),
        deadline=timestamp(row["deadline"]),
        decided_by=row["decided_by"] or "",
        decided_at=timestamp(row["decided_at"]),
        comment=row["comment"] or "",
        decided_by_timeout=bool(row["by_timeout"]),
        escalated_to=json.loads(row["escalated_to"] or "[]"),
    )
