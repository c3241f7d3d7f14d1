"""A run's state as of one of its history events, from its history alone (GetRunAt).

Replay is reading: the events are folded into a `RunState` one by one, nothing is executed
or evaluated again, so a console can step through a finished or failed run and see each
step's status, input and output as they were. Pure like the rest of the engine.

What history does not hold is left out and said (`Replayed.notes`): the retry policy and
idempotency declaration of a step are in its STEP_SCHEDULED event, but the saga's queue of
compensations and the data a wait keeps for itself (an approval's shown fields) are not
rebuilt; a run's status between a dead letter and the event that routed it follows the
order of the events of that one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from controlplane.engine import state as s
from controlplane.engine.events import HANDED_BACK
from controlplane.engine.kinds import NodeKind


@dataclass(frozen=True)
class RecordedEvent:
    """One history row as replay reads it."""

    seq: int
    type: str
    time: float
    node_id: str = ""
    attempt: int = 0
    principal: str = "system"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Replayed:
    state: s.RunState
    # The last event applied.
    seq: int
    notes: list[str] = field(default_factory=list)


def state_at(run_id: str, namespace: str, events: Iterable[RecordedEvent]) -> Replayed:
    """The run after `events` (its history from seq 1, in order, up to the wanted seq)."""
    run = s.RunState(
        id=run_id,
        namespace=namespace,
        workflow_name="",
        workflow_version="",
        status=s.RUNNING,
        input=None,
        created_at=0.0,
        updated_at=0.0,
    )
    replayed = Replayed(run, 0)
    for event in events:
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(run, event)
        run.updated_at = event.time
        replayed.seq = event.seq
        _settle(run)
    if any(st.kind == NodeKind.COMPENSATION for st in run.steps.values()):
        replayed.notes.append("the order of the compensations still to run is not replayed")
    return replayed


# -- the run ---------------------------------------------------------------------------------


def _started(run: s.RunState, e: RecordedEvent) -> None:
    run.workflow_name = str(e.data.get("workflow", ""))
    run.workflow_version = str(e.data.get("version", ""))
    run.input = e.data.get("input")
    run.created_at = e.time


def _closed(status: str) -> Callable[[s.RunState, RecordedEvent], None]:
    def close(run: s.RunState, e: RecordedEvent) -> None:
        run.status = status
        run.closed_at = e.time
        run.attention = None
        if status == s.COMPLETED:
            run.output = e.data.get("output")
        elif "error" in e.data:
            run.last_error = e.data.get("error")

    return close


def _compensating(run: s.RunState, e: RecordedEvent) -> None:
    run.attention = None
    run.status = s.COMPENSATING


def _paused(run: s.RunState, e: RecordedEvent) -> None:
    run.paused = {"by": e.principal, "since": e.time, "reason": e.data.get("reason", "")}


def _resumed(run: s.RunState, e: RecordedEvent) -> None:
    run.paused = None


# -- steps -----------------------------------------------------------------------------------


def _step(run: s.RunState, e: RecordedEvent, kind: str = NodeKind.TASK) -> s.StepState:
    """The node's step, created (first entry) or re-entered as the event says."""
    found = run.steps.get(e.node_id)
    if found is None:
        found = s.StepState(
            node_id=e.node_id,
            step_type="",
            step_version="",
            status=s.SCHEDULED,
            attempt=e.attempt,
            idempotency_key="",
            idempotency="",
            retry={},
            input=None,
            scheduled_at=e.time,
            kind=kind,
        )
        run.steps[e.node_id] = found
    found.attempt = max(found.attempt, e.attempt)
    return found


def _scheduled(run: s.RunState, e: RecordedEvent) -> None:
    kind = NodeKind.COMPENSATION if "compensates" in e.data else NodeKind.TASK
    if e.data.get("kind") == NodeKind.AI:
        kind = NodeKind.AI
    step = _step(run, e, kind)
    step.kind = kind  # a node's steps are all of its kind
    step.attempt = e.attempt
    step.status = s.SCHEDULED
    step.step_type = str(e.data.get("step_type", ""))
    step.step_version = str(e.data.get("step_version", ""))
    step.idempotency_key = str(e.data.get("idempotency_key", ""))
    step.idempotency = str(e.data.get("idempotency", ""))
    step.input = e.data.get("input")
    step.scheduled_at = e.time
    step.next_attempt_at = None
    if kind == NodeKind.COMPENSATION:
        step.data = {"compensates": e.data["compensates"]}
    run.current_node = e.node_id
    _moved_on(run, e.node_id)


def _attempt_started(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    step.status = s.STEP_RUNNING
    step.data = {**step.data, "worker_id": e.data.get("worker_id", ""), "started_at": e.time}


def _attempt_ended(outcome: str) -> Callable[[s.RunState, RecordedEvent], None]:
    def ended(run: s.RunState, e: RecordedEvent) -> None:
        step = _step(run, e)
        started = step.data.get("started_at")
        error = e.data.get("error")
        if outcome == "LOST":
            error = {"type": "AttemptLost", "message": e.data.get("reason", "")}
            handed_back = str(e.data.get("reason", "")).startswith(HANDED_BACK)
            if handed_back and step.idempotency != "none":
                step.retry_base += 1  # as the machine does: a hand back costs no attempt
        step.finish_attempt(outcome, e.time, e.principal, started, error)
        step.data = {k: v for k, v in step.data.items() if k not in ("worker_id", "started_at")}
        if outcome == "COMPLETED":
            _completed(run, step, e.time, e.data.get("output"))
        else:
            step.fail(error or {})
            step.status = s.SCHEDULED  # until the retry or dead letter that follows

    return ended


def _completed(run: s.RunState, step: s.StepState, time: float, output: Any) -> None:
    run.completions += 1
    step.complete(time, output, run.completions)
    compensated = step.data.get("compensates")
    if step.kind == NodeKind.COMPENSATION and compensated in run.steps:
        run.steps[compensated].compensated()


def _retry_scheduled(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    delay = float(e.data.get("delay_seconds") or 0)
    step.attempt = e.attempt
    step.status = s.RETRY_WAIT if delay > 0 else s.SCHEDULED
    step.next_attempt_at = e.data.get("due_at") if delay > 0 else None
    if "budget" in e.data and isinstance(step.input, dict):
        step.input = {**step.input, "budget": e.data["budget"]}


def _dead_lettered(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    step.dead_letter(e.data.get("error") or {})
    # Needs attention unless the same transaction routes the failure on (the next events).
    run.status = s.NEEDS_ATTENTION
    run.attention = e.node_id
    run.last_error = step.last_error


def _retried(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    run.attention = None
    run.status = s.RUNNING
    if "input" in e.data:
        step.input = e.data.get("input")
    step.retry_base = e.attempt - 1
    step.attempt = e.attempt
    step.status = s.SCHEDULED if step.kind in s.WORKER_KINDS else s.STEP_WAITING


def _skipped(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    run.attention = None
    run.status = s.RUNNING
    _completed(run, step, e.time, e.data.get("output"))


def _reused(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    step.step_type = str(e.data.get("step_type", ""))
    step.input = e.data.get("input")
    _completed(run, step, e.time, e.data.get("output"))


def _waiting(kind: str) -> Callable[[s.RunState, RecordedEvent], None]:
    def wait(run: s.RunState, e: RecordedEvent) -> None:
        step = _step(run, e, kind)
        # An AI node's review is an approval its own step (scheduled as "ai") waits on.
        step.kind = NodeKind.AI if step.kind == NodeKind.AI else kind
        step.attempt = e.attempt
        step.status = s.STEP_WAITING
        step.scheduled_at = e.time
        step.data = {k: v for k, v in e.data.items() if k in _WAIT_FACTS}
        run.current_node = e.node_id
        _moved_on(run, e.node_id)

    return wait


# What describe_wait reads of a waiting step, as its starting event records it.
_WAIT_FACTS = ("due_at", "event_name", "correlation_key", "timeout_at", "title", "approvers")


def _wait_ended(
    output_of: Callable[[RecordedEvent], Any],
) -> Callable[[s.RunState, RecordedEvent], None]:
    def end(run: s.RunState, e: RecordedEvent) -> None:
        _completed(run, _step(run, e), e.time, output_of(e))

    return end


def _decided(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    approved = e.data.get("decision") == "approved"
    if step.kind != NodeKind.AI:
        comment = e.data.get("comment", "")
        output = {"approved": approved, "decided_by": e.principal, "comment": comment}
        _completed(run, step, e.time, output)
    elif approved:
        _completed(run, step, e.time, (e.data.get("ai") or {}).get("output"))
    # A rejected review: the STEP_DEAD_LETTERED that follows says what became of the step.


def _timed_out(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    if e.data.get("action") == "timeout" and step.status == s.STEP_WAITING:
        _completed(run, step, e.time, {"timed_out": True})


def _branch_taken(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e, NodeKind.SWITCH)
    step.kind = NodeKind.SWITCH
    step.attempt = e.attempt
    step.data = {"case": e.data.get("case"), "next": e.data.get("next")}
    step.status = s.STEP_COMPLETED
    step.completed_at = e.time
    run.current_node = e.node_id
    _moved_on(run, e.node_id)


# The error of an attempt that was running when its step was cancelled (live: store.run_batch).
CANCELLED_MID_WAY = "the step was cancelled while this attempt ran"


def _cancelled(run: s.RunState, e: RecordedEvent) -> None:
    step = _step(run, e)
    started = step.data.get("started_at")
    if started is not None:
        # An attempt running when its step was cancelled stays listed, as GetRun shows it.
        error = {"type": "Cancelled", "message": CANCELLED_MID_WAY}
        step.finish_attempt(
            "CANCELLED", e.time, str(step.data.get("worker_id", "")), started, error
        )
        step.data = {k: v for k, v in step.data.items() if k not in ("worker_id", "started_at")}
    step.cancel()


def _moved_on(run: s.RunState, node_id: str) -> None:
    """Another node entered after a dead letter: the failure was routed there."""
    if run.attention is not None and run.attention != node_id:
        run.attention = None
        if run.status == s.NEEDS_ATTENTION:
            run.status = s.RUNNING


def _settle(run: s.RunState) -> None:
    """RUNNING or WAITING from the open nodes, as the engine derives it (flow.settle)."""
    if run.status not in (s.RUNNING, s.WAITING):
        return
    steps = run.steps.values()
    if any(st.status in s.OPEN_STEP and st.kind in s.WORKER_KINDS for st in steps):
        run.status = s.RUNNING
    elif any(st.status == s.STEP_WAITING for st in steps):
        run.status = s.WAITING


_HANDLERS: dict[str, Callable[[s.RunState, RecordedEvent], None]] = {
    "RUN_STARTED": _started,
    "RUN_COMPLETED": _closed(s.COMPLETED),
    "RUN_FAILED": _closed(s.FAILED),
    "RUN_CANCELLED": _closed(s.CANCELLED),
    "RUN_COMPENSATED": _closed(s.COMPENSATED),
    "COMPENSATION_STARTED": _compensating,
    "RUN_PAUSED": _paused,
    "RUN_RESUMED": _resumed,
    "STEP_SCHEDULED": _scheduled,
    "ATTEMPT_STARTED": _attempt_started,
    "ATTEMPT_COMPLETED": _attempt_ended("COMPLETED"),
    "ATTEMPT_FAILED": _attempt_ended("FAILED"),
    "ATTEMPT_LOST": _attempt_ended("LOST"),
    "RETRY_SCHEDULED": _retry_scheduled,
    "STEP_DEAD_LETTERED": _dead_lettered,
    "STEP_RETRIED": _retried,
    "STEP_SKIPPED": _skipped,
    "STEP_REUSED": _reused,
    "STEP_CANCELLED": _cancelled,
    "APPROVAL_REQUESTED": _waiting(NodeKind.APPROVAL),
    "APPROVAL_DECIDED": _decided,
    "SLEEP_STARTED": _waiting(NodeKind.SLEEP),
    "SLEEP_FIRED": _wait_ended(lambda e: None),
    "EVENT_WAIT_STARTED": _waiting(NodeKind.WAIT_EVENT),
    "EVENT_RECEIVED": _wait_ended(lambda e: e.data.get("payload")),
    "WAIT_TIMED_OUT": _timed_out,
    "BRANCH_TAKEN": _branch_taken,
    "PARALLEL_STARTED": _waiting(NodeKind.PARALLEL),
    "PARALLEL_JOINED": _wait_ended(lambda e: e.data.get("outputs")),
}
