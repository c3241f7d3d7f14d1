"""Moving a run through its graph: entering nodes, finishing them, joins and dead letters.

Pure, like the rest of the engine: a `Flow` carries the run being changed, the definition,
the time of the event and the transition that collects the commands.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.engine import saga
from controlplane.engine import state as s
from controlplane.engine.definition import (
    ApprovalSpec,
    CompiledDefinition,
    ParallelSpec,
    SleepSpec,
    StepCatalog,
    SwitchSpec,
    TaskSpec,
    WaitEventSpec,
    evaluate,
    resolve_step_policy,
)
from controlplane.engine.events import (
    NewHistoryEvent,
    OpenApproval,
    OpenEventWait,
    ScheduleTask,
    TimerCommand,
    Transition,
)
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.validation import parse_timestamp

Uniform = Callable[[], float]


@dataclass
class Flow:
    run: s.RunState
    definition: CompiledDefinition
    catalog: StepCatalog
    uniform: Uniform
    time: float
    transition: Transition

    def record(self, type: str, node_id: str = "", attempt: int = 0, **data: Any) -> None:
        principal = data.pop("principal", "system")
        self.transition.events.append(
            NewHistoryEvent(type, self.time, node_id, attempt, principal=principal, data=data)
        )

    def step(self, node_id: str) -> s.StepState:
        """The node's state, copied so it can be changed (the input run stays untouched)."""
        step = dataclasses.replace(self.run.steps[node_id])
        step.data = dict(step.data)
        self.run.steps[node_id] = step
        return step


def enter(flow: Flow, node_id: str) -> None:
    """Start a node: schedule its task, open its wait, or decide and move on."""
    spec = flow.definition.nodes[node_id]
    flow.run.current_node = node_id
    if isinstance(spec, TaskSpec):
        _enter_task(flow, spec)
    elif isinstance(spec, ApprovalSpec):
        _enter_approval(flow, spec)
    elif isinstance(spec, SleepSpec):
        _enter_sleep(flow, spec)
    elif isinstance(spec, WaitEventSpec):
        _enter_wait(flow, spec)
    elif isinstance(spec, SwitchSpec):
        _enter_switch(flow, spec)
    else:
        _enter_parallel(flow, spec)


def _new_step(flow: Flow, node_id: str, kind: str, status: str, **fields: Any) -> s.StepState:
    previous = flow.run.steps.get(node_id)
    # Entering a node again (a loop) continues its attempt numbers, so that a late result of
    # the previous entry is recognised as stale, and takes a new idempotency key: it is a new
    # operation (the next page, the next reminder), which a downstream dedupe must not swallow.
    attempt = previous.attempt + 1 if previous else 1
    entry = previous.entry + 1 if previous else 1
    values: dict[str, Any] = {
        "step_type": "",
        "step_version": "",
        "idempotency": "",
        "retry": {},
        "input": None,
    } | fields
    step = s.StepState(
        node_id=node_id,
        status=status,
        attempt=attempt,
        idempotency_key=s.idempotency_key_for(flow.run.id, node_id, entry),
        scheduled_at=flow.time,
        kind=kind,
        entry=entry,
        **values,
    )
    flow.run.steps[node_id] = step
    return step


def _enter_task(flow: Flow, spec: TaskSpec) -> None:
    resolved = resolve_step_policy(spec, flow.catalog)
    idempotency, retry = resolved if resolved else ("", RetryPolicy())
    step = _new_step(
        flow,
        spec.node_id,
        "task",
        s.SCHEDULED,
        step_type=spec.step_type,
        step_version=spec.step_version,
        idempotency=idempotency,
        retry=retry.to_json(),
    )
    error: dict[str, Any] | None = None
    try:
        step.input = spec.evaluate_input(flow.run.context())
    except Exception as exc:  # an evaluation error is a definition bug, not a crash
        error = {"type": "ExpressionError", "message": str(exc), "retryable": False}
    if resolved is None:
        error = {
            "type": "StepNotDeclared",
            "message": f"step type {spec.step_type!r} has no idempotency declaration",
            "retryable": False,
        }
    schedule_step(flow, step, spec.timeout_seconds, error)


def schedule_step(
    flow: Flow, step: s.StepState, timeout: float, error: dict[str, Any] | None, **extra: Any
) -> None:
    """Record STEP_SCHEDULED and queue the task (or dead-letter a step that cannot run)."""
    flow.record(
        "STEP_SCHEDULED",
        step.node_id,
        step.attempt,
        step_type=step.step_type,
        step_version=step.step_version,
        input=step.input,
        idempotency_key=step.idempotency_key,
        idempotency=step.idempotency,
        task_id=step.task_id,
        **extra,
    )
    if error is not None:
        error.setdefault("details", "")
        dead_letter(flow, step, error, error["type"])
        return
    flow.transition.schedule.append(task_for(step, flow.time, timeout))


def timeout_of(flow: Flow, step: s.StepState) -> float:
    """The per-attempt timeout of a step's task node (compensations have none)."""
    spec = flow.definition.nodes.get(step.node_id)
    return spec.timeout_seconds if isinstance(spec, TaskSpec) else 0.0


def task_for(step: s.StepState, available_at: float, timeout: float = 0.0) -> ScheduleTask:
    return ScheduleTask(
        task_id=step.task_id,
        node_id=step.node_id,
        attempt=step.attempt,
        step_type=step.step_type,
        step_version=step.step_version,
        idempotency_key=step.idempotency_key,
        input=step.input,
        available_at=available_at,
        timeout_seconds=timeout,
    )


def _safe(source: str, context: dict[str, Any]) -> Any:
    try:
        return evaluate(source, context)
    except Exception as exc:  # shown to a human rather than failing the run
        return f"<error: {exc}>"


def _enter_approval(flow: Flow, spec: ApprovalSpec) -> None:
    context = flow.run.context()
    shown = {label: _safe(source, context) for label, source in spec.show}
    deadline = flow.time + spec.timeout_seconds if spec.timeout_seconds else None
    step = _new_step(flow, spec.node_id, "approval", s.STEP_WAITING)
    step.data = {
        "title": spec.title,
        "approvers": list(spec.approvers),
        "shown": shown,
        "deadline": deadline,
    }
    flow.record(
        "APPROVAL_REQUESTED",
        spec.node_id,
        step.attempt,
        title=spec.title,
        approvers=list(spec.approvers),
        shown=shown,
        deadline=deadline,
    )
    flow.transition.open_approvals.append(
        OpenApproval(
            spec.node_id, step.idempotency_key, spec.title, spec.approvers, shown, deadline
        )
    )
    if deadline is not None:
        flow.transition.timers.append(TimerCommand(spec.node_id, "approval_deadline", deadline))


def _enter_sleep(flow: Flow, spec: SleepSpec) -> None:
    due = flow.time + spec.seconds
    if spec.until:
        parsed = parse_timestamp(_safe(spec.until, flow.run.context()))
        # An unreadable or past `until` wakes at once rather than never.
        due = max(flow.time, parsed) if parsed is not None else flow.time
    step = _new_step(flow, spec.node_id, "sleep", s.STEP_WAITING)
    step.data = {"due_at": due}
    flow.record("SLEEP_STARTED", spec.node_id, step.attempt, due_at=due)
    flow.transition.timers.append(TimerCommand(spec.node_id, "sleep", due))


def _enter_wait(flow: Flow, spec: WaitEventSpec) -> None:
    raw = _safe(spec.correlation_key, flow.run.context())
    key = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
    timeout_at = flow.time + spec.timeout_seconds if spec.timeout_seconds else None
    step = _new_step(flow, spec.node_id, "wait_event", s.STEP_WAITING)
    step.data = {"event_name": spec.event_name, "correlation_key": key, "timeout_at": timeout_at}
    flow.record(
        "EVENT_WAIT_STARTED",
        spec.node_id,
        step.attempt,
        event_name=spec.event_name,
        correlation_key=key,
        timeout_at=timeout_at,
    )
    flow.transition.open_waits.append(
        OpenEventWait(spec.node_id, spec.event_name, key, spec.retention_seconds)
    )
    if timeout_at is not None:
        flow.transition.timers.append(TimerCommand(spec.node_id, "event_timeout", timeout_at))


def _enter_switch(flow: Flow, spec: SwitchSpec) -> None:
    context = flow.run.context()
    chosen: int | None = None
    for index, (condition, _) in enumerate(spec.cases):
        if _truthy(_safe(condition, context)):
            chosen = index
            break
    target = spec.cases[chosen][1] if chosen is not None else (spec.default_next or spec.next)
    step = _new_step(flow, spec.node_id, "switch", s.STEP_COMPLETED)
    step.data = {"case": chosen, "next": target}
    step.completed_at = flow.time
    flow.record(
        "BRANCH_TAKEN",
        spec.node_id,
        step.attempt,
        case=chosen if chosen is not None else "default",
        next=target,
    )
    advance(flow, spec.node_id, target, None)


def _truthy(value: Any) -> bool:
    # JMESPath truthiness: false, null, "" , [] and {} are false.
    return value not in (None, False, "", [], {}) and not (
        isinstance(value, str) and value.startswith("<error:")
    )


def _enter_parallel(flow: Flow, spec: ParallelSpec) -> None:
    step = _new_step(flow, spec.node_id, "parallel", s.STEP_RUNNING)
    step.data = {"open": list(spec.branches)}
    flow.record("PARALLEL_STARTED", spec.node_id, step.attempt, branches=list(spec.branches))
    for branch in spec.branches:
        if flow.run.status not in (s.RUNNING, s.WAITING):
            return  # a branch failed at once and the run is compensating
        enter(flow, branch)


def advance(flow: Flow, node_id: str, next_node: str | None, output: Any) -> None:
    """A node finished: go to `next_node`, or end its path (branch or run)."""
    if next_node:
        enter(flow, next_node)
        return
    owner = flow.definition.branch_of.get(node_id)
    if owner is None:
        close(flow, s.COMPLETED, output=output)
        return
    parallel_id, branch = owner
    parallel = flow.step(parallel_id)
    if parallel.status != s.STEP_RUNNING:
        return
    parallel.data["open"] = [b for b in parallel.data.get("open", []) if b != branch]
    if parallel.data["open"]:
        return
    parallel.status = s.STEP_COMPLETED
    parallel.completed_at = flow.time
    outputs = {
        member: step.output
        for member, step in flow.run.steps.items()
        if flow.definition.branch_of.get(member, ("",))[0] == parallel_id
        and step.status == s.STEP_COMPLETED
        and step.kind == "task"
    }
    parallel.output = outputs
    flow.record("PARALLEL_JOINED", parallel_id, parallel.attempt, outputs=outputs)
    advance(flow, parallel_id, flow.definition.nodes[parallel_id].next, outputs)


def dead_letter(flow: Flow, step: s.StepState, error: dict[str, Any], reason: str) -> None:
    """A step gave up: route the failure as its node says."""
    step.status = s.DEAD_LETTERED
    step.last_error = error
    step.next_attempt_at = None
    flow.record(
        "STEP_DEAD_LETTERED",
        step.node_id,
        step.attempt,
        error=error,
        reason=reason,
        attempts=step.attempt,
    )
    run = flow.run
    if step.kind != "task":
        _needs_attention(flow, step, error, reason)
        return
    spec = flow.definition.task(step.node_id)
    in_branch = step.node_id in flow.definition.branch_of
    if spec.on_failure_next:
        enter(flow, spec.on_failure_next)
    elif spec.on_failure == "fail":
        run.last_error = error
        saga.cancel_open(flow)
        close(flow, s.FAILED)
    elif spec.on_failure == "compensate" or in_branch:
        # A parallel join needs every branch: one failing cancels the others and the saga
        # unwinds what completed.
        run.last_error = error
        saga.start_compensation(flow, f"step {step.node_id!r} failed: {reason}")
    else:
        _needs_attention(flow, step, error, reason)


def _needs_attention(flow: Flow, step: s.StepState, error: dict[str, Any], reason: str) -> None:
    run = flow.run
    run.status = s.NEEDS_ATTENTION
    run.attention = step.node_id
    run.last_error = error
    what = "compensation" if step.kind == "compensation" else "step"
    run.waiting_for = f"an operator: {what} {step.node_id!r} is dead-lettered ({reason})"
    run.waiting_since = flow.time


def close(flow: Flow, status: str, *, output: Any = None, announce: bool = True) -> None:
    run = flow.run
    run.status = status
    run.closed_at = flow.time
    run.output = output
    run.waiting_for = None
    run.waiting_since = None
    if not announce:
        return
    if status == s.COMPLETED:
        flow.record("RUN_COMPLETED", output=output)
    elif status == s.COMPENSATED:
        flow.record("RUN_COMPENSATED", error=run.last_error)
    else:
        flow.record("RUN_FAILED", error=run.last_error)


def settle(flow: Flow) -> None:
    """Derive RUNNING or WAITING (and what the run waits for) from its open nodes."""
    run = flow.run
    if run.status not in (s.RUNNING, s.WAITING):
        return
    steps = run.steps.values()
    if any(st.status in s.OPEN_STEP and st.kind in ("task", "compensation") for st in steps):
        run.status = s.RUNNING
        run.waiting_for = None
        run.waiting_since = None
        return
    waits = [st for st in steps if st.status == s.STEP_WAITING]
    if waits:
        run.status = s.WAITING
        run.waiting_for = "; ".join(describe_wait(st) for st in waits)
        run.waiting_since = min(st.scheduled_at for st in waits)


def describe_wait(step: s.StepState) -> str:
    data = step.data
    if step.kind == "approval":
        who = ", ".join(data.get("approvers") or ["anyone"])
        return f"approval {data.get('title')!r} of {step.node_id!r} by {who}"
    if step.kind == "sleep":
        due = datetime.fromtimestamp(data["due_at"], UTC).isoformat(timespec="seconds")
        return f"sleep of {step.node_id!r} until {due}"
    return (
        f"event {data.get('event_name')!r} with key {data.get('correlation_key')!r}"
        f" at {step.node_id!r}"
    )
