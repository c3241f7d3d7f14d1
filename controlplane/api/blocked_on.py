"""Why a run is not moving: one `BlockedOn` per open branch, as GetRun serves it.

Everything comes from what the database holds: the run's state, its task rows, approvals,
the dead letter, declared step types, and the worker streams every control plane of the
database records in `worker_sessions` (store/blocked_queries.py reads them), so a worker
connected to another control plane on the same database counts as connected here, and one
whose control plane stopped confirming it does not (law 9).

Waits describe themselves from the run's state; tasks are read against their task row
(ready, leased, when its lease runs out) and the connected workers; a dead letter against
its row. The result is computed, never stored: it is as fresh as the read it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from surefoot.v1 import run_pb2

from controlplane.api import convert
from controlplane.engine import state as s
from controlplane.engine.flow import describe_wait
from controlplane.engine.kinds import NodeKind
from controlplane.store.blocked_queries import BlockingRows
from controlplane.store.codec import load_json, to_datetime, to_epoch

# A heartbeat is late once the lease has run this share of its length without one: workers
# beat every third of the lease by default, so two beats have been missed.
LATE_HEARTBEAT_SHARE = 2 / 3


@dataclass(frozen=True)
class Circumstances:
    """What the blockers of a run are judged against, besides its rows."""

    # Epoch seconds of the judgement.
    now: float
    # The lease length of this control plane (a heartbeat extends a lease by this much).
    lease_seconds: float


def blockers(
    run: Row[Any],
    steps: dict[str, s.StepState],
    tasks: Sequence[Row[Any]],
    rows: BlockingRows,
    circumstances: Circumstances,
) -> list[run_pb2.BlockedOn]:
    """What each open branch of `run` waits for, in the order of its steps."""
    if run.status in s.TERMINAL:
        return []
    live = {(t.node_id, t.attempt): t for t in tasks}
    saved = load_json(run.state)
    attention = s.RunState.attention_from_json(saved)
    paused = s.RunState.paused_from_json(saved)
    found: list[run_pb2.BlockedOn] = []
    for node_id, step in steps.items():
        if step.status == s.STEP_WAITING:
            found.extend(_wait(step, rows))
        elif step.status in s.OPEN_STEP and step.kind in s.WORKER_KINDS:
            task = live.get((node_id, step.attempt))
            if paused is not None and (task is None or task.status != "leased"):
                # Held by the pause: no worker gets it, whatever is connected.
                found.append(_paused(step.node_id, paused))
                continue
            found.append(_task(step, task, rows, circumstances))
        elif (
            step.status == s.DEAD_LETTERED
            and run.status == s.NEEDS_ATTENTION
            # A step dead-lettered and later routed around is history; the one the run
            # needs attention for is named by its state.
            and attention in (None, node_id)
        ):
            found.append(_dead_letter(step, rows.dead_letter, run))
    if paused is not None and not any(b.kind == run_pb2.BLOCKED_ON_KIND_PAUSED for b in found):
        # Nothing is held yet (a running attempt, an approval): the pause still says why the
        # run will not start its next step.
        found.insert(0, _paused(run.current_node or "", paused))
    return found


def _paused(node_id: str, paused: dict[str, Any]) -> run_pb2.BlockedOn:
    by, reason = str(paused.get("by", "")), str(paused.get("reason", ""))
    since = paused.get("since")
    text = f"paused by {by} since {_at(since)}" + (f": {reason}" if reason else "")
    if node_id:
        text = f"{node_id!r} waits: run " + text
    return run_pb2.BlockedOn(
        kind=run_pb2.BLOCKED_ON_KIND_PAUSED,
        node_id=node_id,
        description=text,
        since=convert.timestamp(since),
        paused=run_pb2.PausedWait(paused_by=by, reason=reason),
    )


# -- waits -----------------------------------------------------------------------------------


def _wait(step: s.StepState, rows: BlockingRows) -> list[run_pb2.BlockedOn]:
    kind = step.kind
    if kind == NodeKind.PARALLEL:
        return []  # its branches are steps of their own, each with its blocker
    if kind == NodeKind.APPROVAL:
        return [_approval(step, rows.approvals.get(step.idempotency_key))]
    if kind == NodeKind.AI and isinstance(step.data.get("review"), dict):
        # The model's replies never validated: a person decides, as at any approval.
        return [_approval(step, rows.approvals.get(step.idempotency_key), step.data["review"])]
    data = step.data
    if kind == NodeKind.SLEEP:
        due = data.get("due_at")
        return [
            _entry(
                run_pb2.BLOCKED_ON_KIND_TIMER,
                step,
                f"sleep at {step.node_id!r} until {_at(due)}",
                since=step.scheduled_at,
                until=due,
            )
        ]
    if kind == NodeKind.WAIT_EVENT:
        name, key = str(data.get("event_name", "")), str(data.get("correlation_key", ""))
        timeout = data.get("timeout_at")
        text = (
            f"event {name!r} with key {key!r} at {step.node_id!r}"
            f" since {_at(step.scheduled_at)}"
            + (f", times out at {_at(timeout)}" if timeout else "")
        )
        entry = _entry(
            run_pb2.BLOCKED_ON_KIND_EVENT, step, text, since=step.scheduled_at, until=timeout
        )
        entry.event.CopyFrom(run_pb2.EventWait(event_name=name, correlation_key=key))
        return [entry]
    return [
        _entry(
            run_pb2.BLOCKED_ON_KIND_UNSPECIFIED, step, describe_wait(step), since=step.scheduled_at
        )
    ]


def _approval(
    step: s.StepState, row: Row[Any] | None, review: dict[str, Any] | None = None
) -> run_pb2.BlockedOn:
    """From the approvals row when there is one (it has the escalations and the request's
    time); from the step's state otherwise: its data for an approval node, `review` (the
    step's data["review"]) for an AI node's human review."""
    data = review if review is not None else step.data
    title = row.title if row is not None else str(data.get("title", step.node_id))
    approvers = load_json(row.approvers) if row is not None else list(data.get("approvers", []))
    escalated = bool(load_json(row.escalated_to)) if row is not None else False
    escalated = escalated or bool(data.get("escalated"))
    since: datetime | float = row.requested_at if row is not None else step.scheduled_at
    deadline = row.deadline if row is not None else data.get("deadline")
    who = ", ".join(approvers) if approvers else "anyone with the approver role"
    what = "review of the model's reply" if review is not None else "approval"
    text = (
        f"{what} {title!r} at {step.node_id!r} (id {step.idempotency_key}) by {who},"
        f" requested {_at(since)}"
        + (f", deadline {_at(deadline)}" if deadline is not None else ", no deadline")
        + (" (escalated)" if escalated else "")
        + ("; approving it gives the node its output" if review is not None else "")
    )
    entry = _entry(run_pb2.BLOCKED_ON_KIND_APPROVAL, step, text, since=since, until=deadline)
    entry.approval.CopyFrom(
        run_pb2.ApprovalWait(
            approval_id=step.idempotency_key,
            title=title,
            approvers=approvers,
            escalated=escalated,
        )
    )
    return entry


# -- tasks -----------------------------------------------------------------------------------


def _task(
    step: s.StepState,
    task: Row[Any] | None,
    rows: BlockingRows,
    circumstances: Circumstances,
) -> run_pb2.BlockedOn:
    now = circumstances.now
    due = step.next_attempt_at
    if step.status == s.RETRY_WAIT and due is not None and due > now:
        return _retry(step, due)
    wanted = _wanted(step)
    detail = _task_detail(step, rows)
    if task is not None and task.status == "leased":
        return _leased(step, task, wanted, detail, circumstances)
    since: datetime | float = task.available_at if task is not None else step.scheduled_at
    if detail.capable_workers == 0:
        connected = ", ".join(f"{step.step_type}@{v}" for v in detail.connected_versions)
        declared = ", ".join(detail.declared_versions)
        draining = sum(
            w.draining and w.declares(step.step_type, step.step_version) for w in rows.workers
        )
        text = (
            f"step {step.node_id!r} needs {wanted}: no connected worker can take it"
            f" (connected: {connected or 'none'}"
            + (f"; {draining} worker(s) that implement it are draining" if draining else "")
            + f"; declared versions: {declared or 'none'}), ready since {_at(since)}"
        )
        kind = run_pb2.BLOCKED_ON_KIND_NO_CAPABLE_WORKER
    else:
        busy = "all busy" if detail.free_slots == 0 else f"{detail.free_slots} free slot(s)"
        text = (
            f"step {step.node_id!r} ({wanted}) attempt {_of(step)} queued since {_at(since)}:"
            f" {detail.capable_workers} capable worker(s), {busy}"
        )
        kind = run_pb2.BLOCKED_ON_KIND_QUEUED
    entry = _entry(kind, step, text, since=since)
    entry.task.CopyFrom(detail)
    return entry


def _leased(
    step: s.StepState,
    task: Row[Any],
    wanted: str,
    detail: run_pb2.TaskWait,
    circumstances: Circumstances,
) -> run_pb2.BlockedOn:
    """A running attempt, or one whose worker has stopped heartbeating."""
    now, lease = circumstances.now, circumstances.lease_seconds
    if task.lease_expires_at is None:  # not written that way; said plainly if ever
        text = f"step {step.node_id!r} ({wanted}) attempt {_of(step)} leased, lease unknown"
        entry = _entry(run_pb2.BLOCKED_ON_KIND_RUNNING, step, text, since=task.leased_at)
        entry.task.CopyFrom(detail)
        return entry
    expires = to_epoch(task.lease_expires_at)
    # Every grant or heartbeat sets the expiry to then + lease: the last one was this long
    # ago (another control plane's lease length may differ; this one's is the estimate).
    beat = max(expires - lease, to_epoch(task.leased_at)) if task.leased_at else expires - lease
    worker = task.worker_id or "?"
    detail.worker_id = worker
    detail.last_heartbeat_at.FromDatetime(to_datetime(beat))
    detail.lease_expires_at.FromDatetime(to_datetime(expires))
    silent = now - beat
    if expires <= now or silent > lease * LATE_HEARTBEAT_SHARE:
        ending = (
            f"lease ran out {_ago(now - expires)} ago: the attempt is being taken back"
            if expires <= now
            else f"lease runs out at {_at(expires)}, then the attempt is taken back"
        )
        text = (
            f"step {step.node_id!r} ({wanted}) attempt {_of(step)}: heartbeat of worker"
            f" {worker} is late, last at {_at(beat)} ({_ago(silent)} ago); {ending}"
        )
        entry = _entry(
            run_pb2.BLOCKED_ON_KIND_HEARTBEAT_LATE, step, text, since=beat, until=expires
        )
    else:
        text = (
            f"step {step.node_id!r} ({wanted}) attempt {_of(step)} running on worker {worker}"
            f" since {_at(task.leased_at)}, last heartbeat {_ago(silent)} ago"
        )
        entry = _entry(run_pb2.BLOCKED_ON_KIND_RUNNING, step, text, since=task.leased_at)
    entry.task.CopyFrom(detail)
    return entry


def _retry(step: s.StepState, due: float) -> run_pb2.BlockedOn:
    error = convert.step_error(step.last_error)
    last = step.finished_attempts[-1]["ended_at"] if step.finished_attempts else None
    text = f"retry of step {step.node_id!r} ({_wanted(step)}): attempt {_of(step)} at {_at(due)}"
    if error is not None:
        text += f"; last error {_error_text(error)}"
    entry = _entry(
        run_pb2.BLOCKED_ON_KIND_RETRY, step, text, since=last or step.scheduled_at, until=due
    )
    policy_attempt, max_attempts = _budget(step)
    entry.retry.CopyFrom(
        run_pb2.RetryWait(
            step_type=step.step_type,
            step_version=step.step_version,
            attempt=step.attempt,
            policy_attempt=policy_attempt,
            max_attempts=max_attempts,
            last_error=error,
        )
    )
    return entry


def _task_detail(step: s.StepState, rows: BlockingRows) -> run_pb2.TaskWait:
    """The task against the connected workers: those of its namespace that declare its step
    type (blocking_rows reads no others)."""
    capable = [w for w in rows.workers if w.can_take(step.step_type, step.step_version)]
    connected = sorted({v for w in rows.workers for v in w.versions_of(step.step_type)})
    policy_attempt, max_attempts = _budget(step)
    return run_pb2.TaskWait(
        step_type=step.step_type,
        step_version=step.step_version,
        attempt=step.attempt,
        policy_attempt=policy_attempt,
        max_attempts=max_attempts,
        connected_versions=connected,
        declared_versions=rows.declared_versions.get(step.step_type, []),
        capable_workers=len(capable),
        free_slots=sum(w.free for w in capable),
    )


# -- dead letters ----------------------------------------------------------------------------


def _dead_letter(step: s.StepState, row: Row[Any] | None, run: Row[Any]) -> run_pb2.BlockedOn:
    error = convert.step_error(step.last_error)
    attempts = row.attempts if row is not None else step.attempt
    since = row.dead_lettered_at if row is not None else run.waiting_since
    what = "compensation" if step.kind == NodeKind.COMPENSATION else "step"
    text = (
        f"dead letter: {what} {step.node_id!r} ({_wanted(step)}) since {_at(since)}"
        f" after {attempts} attempt(s)"
        + (f": {_error_text(error)}" if error is not None else "")
        + "; an operator retries, skips or abandons it"
    )
    entry = _entry(run_pb2.BLOCKED_ON_KIND_DEAD_LETTER, step, text, since=since)
    entry.dead_letter.CopyFrom(
        run_pb2.DeadLetterWait(
            step_type=step.step_type,
            step_version=step.step_version,
            error=error,
            attempts=attempts,
            compensation=step.kind == NodeKind.COMPENSATION,
        )
    )
    return entry


# -- words -----------------------------------------------------------------------------------


def _entry(
    kind: run_pb2.BlockedOnKind.ValueType,
    step: s.StepState,
    description: str,
    *,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
) -> run_pb2.BlockedOn:
    return run_pb2.BlockedOn(
        kind=kind,
        node_id=step.node_id,
        description=description,
        since=convert.timestamp(since),
        until=convert.timestamp(until),
    )


def _wanted(step: s.StepState) -> str:
    return f"{step.step_type}@{step.step_version}" if step.step_version else step.step_type


def _budget(step: s.StepState) -> tuple[int, int]:
    """(n, m) of "attempt n of m": attempts before an operator's retry do not count."""
    max_attempts = int(step.retry.get("max_attempts", 0)) if step.retry else 0
    return step.attempt - step.retry_base, max_attempts


def _of(step: s.StepState) -> str:
    n, m = _budget(step)
    return f"{n} of {m}" if m else str(n)


def _error_text(error: run_pb2.StepError) -> str:
    text = f"{error.type}: {error.message}" if error.type else error.message
    return text.replace("\n", " ")


def _at(value: datetime | float | None) -> str:
    if value is None:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ago(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
