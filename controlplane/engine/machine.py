"""The run state machine: what each event does to a run.

Every function here is pure: time arrives in the event, randomness through `uniform`.
Graph movement lives in `flow`, compensation and cancellation in `saga`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from controlplane.engine import flow as f
from controlplane.engine import saga, triage
from controlplane.engine import state as s
from controlplane.engine.definition import (
    ApprovalSpec,
    CompiledDefinition,
    StepCatalog,
    WaitEventSpec,
)
from controlplane.engine.events import (
    AbandonRequested,
    ApprovalDecided,
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    CloseApproval,
    EscalateApproval,
    EventReceived,
    NewHistoryEvent,
    RunEvent,
    StepRetryRequested,
    StepSkipRequested,
    TimerFired,
    Transition,
)
from controlplane.engine.retry import RetryPolicy

Uniform = Callable[[], float]


class RunClosed(Exception):
    """The run has ended (or is already unwinding); the request cannot change it."""


class NotWaiting(Exception):
    """The node is not waiting for this (a decided approval, a consumed wait)."""


def start_run(
    *,
    run_id: str,
    namespace: str,
    definition: CompiledDefinition,
    input: Any,
    time: float,
    catalog: StepCatalog,
    request_id: str = "",
    principal: str = "system",
    uniform: Uniform = lambda: 0.5,
) -> tuple[s.RunState, Transition]:
    """The state of a new run and its first commands (history, first task or wait)."""
    run = s.RunState(
        id=run_id,
        namespace=namespace,
        workflow_name=definition.name,
        workflow_version=definition.version,
        status=s.RUNNING,
        input=input,
        created_at=time,
        updated_at=time,
    )
    flow = f.Flow(run, definition, catalog, uniform, time, Transition())
    flow.record(
        "RUN_STARTED",
        principal=principal,
        workflow=definition.name,
        version=definition.version,
        input=input,
        request_id=request_id,
    )
    f.enter(flow, definition.start)
    f.settle(flow)
    return run, flow.transition


def apply(
    run: s.RunState,
    event: RunEvent,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    uniform: Uniform,
) -> tuple[s.RunState, Transition]:
    """The run after `event`, and the commands that make it so. `run` is not modified.

    Raises:
        RunClosed: a cancellation or abandonment of a run that has ended.
        NotWaiting: a decision for an approval that is not pending.
    """
    run = dataclasses.replace(run, steps=dict(run.steps), compensation=list(run.compensation))
    flow = f.Flow(run, definition, catalog, uniform, event.time, Transition())
    if isinstance(event, CancelRequested):
        _cancel(flow, event)
    elif isinstance(event, AbandonRequested):
        _abandon(flow, event)
    elif isinstance(event, ApprovalDecided):
        _decided(flow, event)
    elif isinstance(event, TimerFired):
        _timer(flow, event)
    elif isinstance(event, EventReceived):
        _event(flow, event)
    elif isinstance(event, StepRetryRequested):
        triage.retry(flow, event)
    elif isinstance(event, StepSkipRequested):
        triage.skip(flow, event)
    else:
        step = _current_step(flow, event)
        if step is not None:
            if isinstance(event, AttemptCompleted):
                _completed(flow, step, event)
            elif isinstance(event, AttemptFailed):
                _failed(flow, step, event)
            else:
                _lost(flow, step, event)
    f.settle(flow)
    if run.status != s.NEEDS_ATTENTION:
        run.attention = None
    run.updated_at = max(run.updated_at, event.time)
    return run, flow.transition


# -- task attempts -------------------------------------------------------------------------


def _current_step(
    flow: f.Flow, event: AttemptCompleted | AttemptFailed | AttemptLost
) -> s.StepState | None:
    """The step the result is for, copied for change; None (and a RESULT_IGNORED record) when
    the result is for an attempt that is no longer current (law 3)."""
    run = flow.run
    found = run.steps.get(event.node_id)
    reason = ""
    if run.status in s.TERMINAL:
        reason = f"run is {run.status}"
    elif found is None:
        reason = f"run has no step {event.node_id!r}"
    elif found.attempt != event.attempt:
        reason = f"attempt {event.attempt} is superseded by attempt {found.attempt}"
    elif found.status not in s.OPEN_STEP:
        reason = f"step is {found.status}"
    if reason:
        flow.record(
            "RESULT_IGNORED",
            event.node_id,
            event.attempt,
            principal=event.worker_id or "system",
            reason=reason,
            result=_result_data(event),
        )
        return None
    step = flow.step(event.node_id)
    if event.started_at is not None:
        flow.transition.events.append(
            NewHistoryEvent(
                "ATTEMPT_STARTED",
                event.started_at,
                step.node_id,
                step.attempt,
                principal=event.worker_id or "system",
                data={"worker_id": event.worker_id, "task_id": step.task_id},
            )
        )
    return step


def _result_data(event: AttemptCompleted | AttemptFailed | AttemptLost) -> dict[str, Any]:
    if isinstance(event, AttemptCompleted):
        return {"outcome": "COMPLETED", "output": event.output}
    if isinstance(event, AttemptFailed):
        return {"outcome": "FAILED", "error": event.error}
    return {"outcome": "LOST", "reason": event.reason}


def _completed(flow: f.Flow, step: s.StepState, event: AttemptCompleted) -> None:
    flow.record(
        "ATTEMPT_COMPLETED",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        output=event.output,
    )
    flow.transition.remove.append(step.task_id)
    run = flow.run
    run.completions += 1
    step.status = s.STEP_COMPLETED
    step.output = event.output
    step.completed_at = event.time
    step.completion_index = run.completions
    step.next_attempt_at = None
    if step.kind == "compensation":
        saga.compensation_completed(flow, step)
        return
    f.advance(flow, step.node_id, flow.definition.nodes[step.node_id].next, event.output)


def _failed(flow: f.Flow, step: s.StepState, event: AttemptFailed) -> None:
    flow.record(
        "ATTEMPT_FAILED",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        error=event.error,
    )
    flow.transition.remove.append(step.task_id)
    step.last_error = event.error
    policy = RetryPolicy.from_json(step.retry)
    error_type = str(event.error.get("type", ""))
    if not event.error.get("retryable", True) or error_type in policy.non_retryable_error_types:
        f.dead_letter(flow, step, event.error, "non-retryable error")
    elif policy.gives_up_after(step.attempt - step.retry_base):
        f.dead_letter(flow, step, event.error, f"gave up after {step.attempt} attempts")
    else:
        delay = policy.delay_for(step.attempt - step.retry_base, flow.uniform)
        # The step may know better than the policy (an HTTP Retry-After): never sooner.
        asked = float(event.error.get("retry_after", 0.0) or 0.0)
        if asked > delay:
            _retry(flow, step, asked, f"attempt failed; the step asked to retry after {asked:g} s")
        else:
            _retry(flow, step, delay, "attempt failed")


def _lost(flow: f.Flow, step: s.StepState, event: AttemptLost) -> None:
    flow.record(
        "ATTEMPT_LOST",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        reason=event.reason,
    )
    flow.transition.remove.append(step.task_id)
    error = {"type": "AttemptLost", "message": event.reason, "retryable": True, "details": ""}
    step.last_error = error
    policy = RetryPolicy.from_json(step.retry)
    if step.idempotency == "none":
        # It may have happened: only a human can tell whether running it again is safe.
        error["retryable"] = False
        f.dead_letter(flow, step, error, "idempotency none: not retried automatically")
    elif policy.gives_up_after(step.attempt - step.retry_base):
        f.dead_letter(flow, step, error, f"gave up after {step.attempt} attempts")
    else:
        # The worker, not the step, failed: hand it to another worker at once.
        _retry(flow, step, 0.0, event.reason)


def _retry(flow: f.Flow, step: s.StepState, delay: float, reason: str) -> None:
    step.attempt += 1
    due = flow.time + delay
    step.status = s.RETRY_WAIT if delay > 0 else s.SCHEDULED
    step.next_attempt_at = due if delay > 0 else None
    flow.record(
        "RETRY_SCHEDULED",
        step.node_id,
        step.attempt,
        delay_seconds=round(delay, 6),
        due_at=due,
        reason=reason,
    )
    flow.transition.schedule.append(f.task_for(step, due, f.timeout_of(flow, step)))


# -- waits -----------------------------------------------------------------------------------


def _waiting(flow: f.Flow, node_id: str, kind: str) -> s.StepState | None:
    current = flow.run.steps.get(node_id)
    if (
        flow.run.status in s.TERMINAL
        or current is None
        or current.kind != kind
        or current.status != s.STEP_WAITING
    ):
        return None
    return flow.step(node_id)


def _decided(flow: f.Flow, event: ApprovalDecided) -> None:
    step = _waiting(flow, event.node_id, "approval")
    if step is None:
        raise NotWaiting(f"approval {event.node_id!r} is not pending")
    decision = "approved" if event.approve else "rejected"
    step.status = s.STEP_COMPLETED
    step.completed_at = event.time
    step.output = {
        "approved": event.approve,
        "decided_by": event.principal,
        "comment": event.comment,
    }
    flow.record(
        "APPROVAL_DECIDED",
        event.node_id,
        step.attempt,
        principal=event.principal,
        decision=decision,
        comment=event.comment,
        title=step.data.get("title"),
        shown=step.data.get("shown"),
        by_timeout=event.by_timeout,
    )
    flow.transition.close_approvals.append(
        CloseApproval(
            event.node_id,
            step.idempotency_key,
            decision.upper(),
            event.principal,
            event.time,
            event.comment,
            event.by_timeout,
        )
    )
    flow.transition.cancel_timers.append((event.node_id, "approval_deadline"))
    spec = flow.definition.nodes[event.node_id]
    assert isinstance(spec, ApprovalSpec)
    if event.approve:
        f.advance(flow, event.node_id, spec.approved_next or spec.next, step.output)
    elif spec.rejected_next:
        f.enter(flow, spec.rejected_next)
    else:
        flow.run.last_error = {
            "type": "Rejected",
            "message": f"{spec.title!r} rejected by {event.principal}: {event.comment}",
            "retryable": False,
            "details": "",
        }
        saga.start_compensation(flow, f"approval {event.node_id!r} rejected")


def _timer(flow: f.Flow, event: TimerFired) -> None:
    kind = {"sleep": "sleep", "approval_deadline": "approval", "event_timeout": "wait_event"}
    step = _waiting(flow, event.node_id, kind.get(event.kind, ""))
    if step is None:
        return  # the wait ended before its timer: nothing to do
    spec = flow.definition.nodes[event.node_id]
    if event.kind == "sleep":
        step.status = s.STEP_COMPLETED
        step.completed_at = event.time
        flow.record("SLEEP_FIRED", event.node_id, step.attempt, due_at=step.data.get("due_at"))
        f.advance(flow, event.node_id, spec.next, None)
    elif event.kind == "approval_deadline":
        assert isinstance(spec, ApprovalSpec)
        action = spec.on_timeout or "reject"
        if action == "escalate" and not step.data.get("escalated"):
            step.data["escalated"] = True
            step.data["approvers"] = list(step.data.get("approvers", [])) + list(spec.escalate_to)
            flow.record(
                "WAIT_TIMED_OUT",
                event.node_id,
                step.attempt,
                action="escalated",
                escalate_to=list(spec.escalate_to),
            )
            flow.transition.escalations.append(
                EscalateApproval(event.node_id, step.idempotency_key, spec.escalate_to)
            )
            return
        flow.run.steps[event.node_id] = step
        _decided(
            flow,
            ApprovalDecided(
                event.node_id,
                action == "approve",
                "system:deadline",
                f"no decision by the deadline: default {action}",
                event.time,
                by_timeout=True,
            ),
        )
    else:
        assert isinstance(spec, WaitEventSpec)
        flow.record("WAIT_TIMED_OUT", event.node_id, step.attempt, action="timeout")
        flow.transition.close_waits.append(event.node_id)
        if spec.timeout_next:
            step.status = s.STEP_COMPLETED
            step.completed_at = event.time
            step.output = {"timed_out": True}
            f.enter(flow, spec.timeout_next)
        else:
            error = {
                "type": "Timeout",
                "message": f"no event {spec.event_name!r} within {spec.timeout_seconds} s",
                "retryable": False,
                "details": "",
            }
            f.dead_letter(flow, step, error, "wait timed out")


def _event(flow: f.Flow, event: EventReceived) -> None:
    step = _waiting(flow, event.node_id, "wait_event")
    if step is None:
        raise NotWaiting(f"node {event.node_id!r} is not waiting for an event")
    step.status = s.STEP_COMPLETED
    step.completed_at = event.time
    step.output = event.payload
    flow.record(
        "EVENT_RECEIVED",
        event.node_id,
        step.attempt,
        event_name=event.event_name,
        correlation_key=event.correlation_key,
        payload=event.payload,
        event_id=event.event_id,
    )
    flow.transition.close_waits.append(event.node_id)
    flow.transition.cancel_timers.append((event.node_id, "event_timeout"))
    f.advance(flow, event.node_id, flow.definition.nodes[event.node_id].next, event.payload)


# -- operators -------------------------------------------------------------------------------


def _cancel(flow: f.Flow, event: CancelRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL:
        raise RunClosed(f"run {run.id} is already {run.status}")
    saga.cancel_open(flow)
    flow.record("RUN_CANCELLED", principal=event.principal, reason=event.reason)
    f.close(flow, s.CANCELLED, announce=False)


def _abandon(flow: f.Flow, event: AbandonRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL or run.status == s.COMPENSATING:
        raise RunClosed(f"run {run.id} is already {run.status}")
    why = f"abandoned by {event.principal}" + (f": {event.reason}" if event.reason else "")
    run.last_error = {"type": "Abandoned", "message": why, "retryable": False, "details": ""}
    saga.start_compensation(flow, why, principal=event.principal)
