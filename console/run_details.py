"""What the Run and Replay screens say about a run, a step or an attempt, as plain values:
header lines and the inspector's sections (JSON-like dicts). Pure functions of messages."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2
from surefoot.v1 import common_pb2, run_pb2

from console.trace import COMPENSATION_SUFFIX


def when(value: timestamp_pb2.Timestamp) -> str | None:
    """UTC to the millisecond; None when unset (the inspector leaves it out)."""
    if not value.seconds and not value.nanos:
        return None
    return value.ToDatetime().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def value_of(payload: common_pb2.Payload) -> Any:
    """A payload's JSON value (its text when it is not JSON); None when empty."""
    if not payload.data:
        return None
    text = payload.data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def status_name(status: int) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")  # type: ignore[arg-type]


def step_status_name(status: int) -> str:
    return run_pb2.StepStatus.Name(status).removeprefix("STEP_STATUS_")  # type: ignore[arg-type]


def error_of(error: run_pb2.StepError) -> dict[str, Any] | None:
    if not error.type and not error.message:
        return None
    found: dict[str, Any] = {"type": error.type, "message": error.message}
    found["retryable"] = error.retryable
    if error.details:
        found["details"] = error.details
    return found


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value not in (None, "", [], {})}


def title_line(run: run_pb2.Run) -> str:
    """`run ID  workflow@version  STATUS` and, when it applies, paused and forked-from."""
    line = f"run {run.id}  {run.workflow_name}@{run.workflow_version}  {status_name(run.status)}"
    if run.HasField("paused"):
        line += f"  PAUSED by {run.paused.paused_by or '?'}"
        if run.paused.reason:
            line += f" ({run.paused.reason})"
    if run.forked_from.run_id:
        line += f"  forked from {run.forked_from.run_id} at {run.forked_from.node_id}"
    return line


BLOCKED_ON_MARKS = {
    "APPROVAL": "awaiting approval",
    "TIMER": "timer",
    "RETRY": "retry",
    "EVENT": "awaiting event",
    "NO_CAPABLE_WORKER": "no worker",
    "QUEUED": "queued",
    "RUNNING": "running",
    "HEARTBEAT_LATE": "heartbeat late",
    "DEAD_LETTER": "dead letter",
    "PAUSED": "paused",
}


def blocked_on_lines(run: run_pb2.Run, limit: int) -> list[str]:
    """What the run waits for, one line per open branch, at most `limit` lines."""
    lines = []
    for blocked in run.blocked_on:
        kind = run_pb2.BlockedOnKind.Name(blocked.kind).removeprefix("BLOCKED_ON_KIND_")
        mark = BLOCKED_ON_MARKS.get(kind, kind.lower())
        since = when(blocked.since)
        line = f"blocked on: {mark} · {blocked.node_id or '-'} · {blocked.description}"
        if since:
            line += f" (since {since[11:19]})"
        lines.append(line)
    if not lines:
        if run.closed_at.seconds:
            lines.append(f"ended {when(run.closed_at)}")
        elif run.waiting_for:
            lines.append(f"waiting for: {run.waiting_for}")
    if len(lines) > limit:
        more = len(lines) - limit + 1
        lines = [*lines[: limit - 1], f"… and {more} more (see the run row's inspector)"]
    return lines


def approval_id_at(run: run_pb2.Run, node_id: str | None) -> str | None:
    """The pending approval the run waits for at `node_id`, or its only one when no node is
    given (or the node has none)."""
    pending = [
        (blocked.node_id, blocked.approval.approval_id)
        for blocked in run.blocked_on
        if blocked.kind == run_pb2.BLOCKED_ON_KIND_APPROVAL and blocked.approval.approval_id
    ]
    for node, approval_id in pending:
        if node == node_id:
            return approval_id
    return pending[0][1] if len(pending) == 1 else None


def run_sections(run: run_pb2.Run) -> dict[str, Any]:
    summary = _compact(
        {
            "id": run.id,
            "workflow": f"{run.workflow_name}@{run.workflow_version}",
            "status": status_name(run.status),
            "created": when(run.created_at),
            "updated": when(run.updated_at),
            "closed": when(run.closed_at),
            "current node": run.current_node,
            "trace id": run.trace_id,
            "request id": run.request_id,
        }
    )
    if run.HasField("paused"):
        summary["paused"] = _compact(
            {"by": run.paused.paused_by, "reason": run.paused.reason, "since": when(run.paused_at)}
        )
    if run.forked_from.run_id:
        summary["forked from"] = _link(run.forked_from)
    if run.forks:
        summary["forks"] = [_link(fork) for fork in run.forks]
    blocked = [_blocked(b) for b in run.blocked_on]
    return {
        "run": summary,
        "input": value_of(run.input),
        "output": value_of(run.output),
        "error": error_of(run.last_error),
        "blocked on": blocked or None,
    }


def _link(link: run_pb2.RunLink) -> dict[str, Any]:
    return _compact(
        {
            "run": link.run_id,
            "node": link.node_id,
            "by": link.principal,
            "at": when(link.created_at),
        }
    )


def _blocked(blocked: run_pb2.BlockedOn) -> dict[str, Any]:
    kind = run_pb2.BlockedOnKind.Name(blocked.kind).removeprefix("BLOCKED_ON_KIND_")
    return _compact(
        {
            "kind": kind,
            "node": blocked.node_id,
            "description": blocked.description,
            "since": when(blocked.since),
            "until": when(blocked.until),
        }
    )


def attempt_of(attempt: run_pb2.Attempt) -> dict[str, Any]:
    outcome = run_pb2.AttemptOutcome.Name(attempt.outcome).removeprefix("ATTEMPT_OUTCOME_")
    return _compact(
        {
            "number": attempt.number,
            "outcome": outcome,
            "worker": attempt.worker_id,
            "started": when(attempt.started_at),
            "ended": when(attempt.ended_at),
            "error": error_of(attempt.error),
            "progress": value_of(attempt.details),
        }
    )


def step_sections(
    step: run_pb2.Step | None, node_id: str, approval: dict[str, Any] | None
) -> dict[str, Any]:
    """A step's sections: what it is, its input, output, last error, attempts, approval."""
    if step is None:
        return {"step": {"node": node_id, "note": "not in the run's steps yet"}}
    summary = _compact(
        {
            "node": step.node_id,
            "kind": step.kind,
            "step type": step.step_type,
            "status": step_status_name(step.status),
            "attempt": step.attempt,
            "idempotency key": step.idempotency_key,
            "scheduled": when(step.scheduled_at),
            "next attempt": when(step.next_attempt_at),
            "waiting for": step.waiting_for,
        }
    )
    if node_id.endswith(COMPENSATION_SUFFIX):
        summary["undoes"] = node_id.removesuffix(COMPENSATION_SUFFIX)
    return {
        "step": summary,
        "input": value_of(step.input),
        "output": value_of(step.output),
        "error": error_of(step.last_error),
        "attempts": [attempt_of(a) for a in step.attempts] or None,
        "approval": approval,
    }


def attempt_sections(step: run_pb2.Step | None, number: int) -> dict[str, Any]:
    if step is None:
        return {}
    for attempt in step.attempts:
        if attempt.number == number:
            return {"attempt": attempt_of(attempt), "input": value_of(step.input)}
    return {"attempt": {"number": number, "note": "not reported yet"}}


def context_of(snapshot: run_pb2.RunSnapshot) -> dict[str, Any]:
    """The run's context at a replayed event, as its expressions read it."""
    steps = {step.node_id: _compact({"output": value_of(step.output)}) for step in snapshot.steps}
    return {"input": value_of(snapshot.input), "steps": steps}
