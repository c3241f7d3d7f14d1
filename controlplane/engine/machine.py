"""The run state machine: what each event does to a run.

Every function here is pure: time arrives in the event, randomness through `uniform`, step
types in an immutable snapshot. Graph movement lives in `flow`, each node kind's behaviour
in `nodes`, compensation and cancellation in `saga`, an operator's triage in `triage`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from controlplane.engine import nodes, pausing, saga, triage
from controlplane.engine import state as s
from controlplane.engine.definition import CompiledDefinition
from controlplane.engine.events import (
    AbandonRequested,
    ApprovalDecided,
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    EventReceived,
    PauseRequested,
    ResumeRequested,
    RunEvent,
    StepRetryRequested,
    StepSkipRequested,
    TimerFired,
    Transition,
)
from controlplane.engine.flow import Flow
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes import NotWaiting, ai, approval, wait_event
from controlplane.engine.nodes.base import waiting_step
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.step_types import StepCatalog

Uniform = Callable[[], float]

__all__ = ["NotWaiting", "RunClosed", "Uniform", "apply", "start_run"]


def new_run(
    run_id: str,
    namespace: str,
    definition: CompiledDefinition,
    input: Any,
    time: float,
    catalog: StepCatalog,
    uniform: Uniform,
    principal: str,
    request_id: str,
    **started: Any,
) -> Flow:
    """A new run's flow with its RUN_STARTED recorded (`started`: more of that event's data);
    the caller enters its first node."""
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
    flow = Flow(run, definition, catalog, uniform, time, Transition())
    flow.record(
        "RUN_STARTED",
        principal=principal,
        workflow=definition.name,
        version=definition.version,
        input=input,
        request_id=request_id,
        **started,
    )
    return flow


class RunClosed(Exception):
    """The run has ended (or is already unwinding); the request cannot change it."""


def start_run(
    *,
    run_id: str,
    namespace: str,
    definition: CompiledDefinition,
    input: Any,
    time: float,
    catalog: StepCatalog,
    uniform: Uniform,
    request_id: str = "",
    principal: str = "system",
) -> tuple[s.RunState, Transition]:
    """The state of a new run and its first commands (history, first task or wait)."""
    flow = new_run(
        run_id, namespace, definition, input, time, catalog, uniform, principal, request_id
    )
    flow.enter(definition.start)
    flow.settle()
    return flow.run, flow.transition


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
        PauseRefused: a pause of a paused or ended run, a resume of a run not paused.
    """
    run = dataclasses.replace(run, steps=dict(run.steps), compensation=list(run.compensation))
    flow = Flow(run, definition, catalog, uniform, event.time, Transition())
    if isinstance(event, CancelRequested):
        _cancel(flow, event)
    elif isinstance(event, AbandonRequested):
        _abandon(flow, event)
    elif isinstance(event, ApprovalDecided):
        _decided(flow, event)
    elif isinstance(event, TimerFired):
        _timer(flow, event)
    elif isinstance(event, EventReceived):
        wait_event.receive(flow, event)
    elif isinstance(event, StepRetryRequested):
        triage.retry(flow, event)
    elif isinstance(event, StepSkipRequested):
        triage.skip(flow, event)
    elif isinstance(event, PauseRequested):
        pausing.pause(flow, event)
    elif isinstance(event, ResumeRequested):
        pausing.resume(flow, event)
    else:
        step = _current_step(flow, event)
        if step is not None:
            _finish_attempt(step, event)
            if isinstance(event, AttemptCompleted):
                _completed(flow, step, event)
            elif isinstance(event, AttemptFailed):
                _failed(flow, step, event)
            else:
                _lost(flow, step, event)
    flow.settle()
    if run.status != s.NEEDS_ATTENTION:
        run.attention = None
    run.updated_at = max(run.updated_at, event.time)
    return run, flow.transition


# -- task attempts -------------------------------------------------------------------------


def _current_step(
    flow: Flow, event: AttemptCompleted | AttemptFailed | AttemptLost
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
    # ATTEMPT_STARTED was recorded when the task was leased (store.run_batch), not here.
    return flow.step(event.node_id)


def _finish_attempt(
    step: s.StepState, event: AttemptCompleted | AttemptFailed | AttemptLost
) -> None:
    if isinstance(event, AttemptCompleted):
        outcome, error = "COMPLETED", None
    elif isinstance(event, AttemptFailed):
        outcome, error = "FAILED", event.error
    else:
        outcome, error = "LOST", {"type": "AttemptLost", "message": event.reason}
    step.finish_attempt(outcome, event.time, event.worker_id or "system", event.started_at, error)


def _result_data(event: AttemptCompleted | AttemptFailed | AttemptLost) -> dict[str, Any]:
    if isinstance(event, AttemptCompleted):
        return {"outcome": "COMPLETED", "output": event.output}
    if isinstance(event, AttemptFailed):
        return {"outcome": "FAILED", "error": event.error}
    return {"outcome": "LOST", "reason": event.reason}


def _completed(flow: Flow, step: s.StepState, event: AttemptCompleted) -> None:
    if step.kind == NodeKind.AI:
        ai.completed(flow, step, event)
        return
    flow.record(
        "ATTEMPT_COMPLETED",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        output=event.output,
    )
    flow.transition.remove.append(step.task_id)
    flow.run.completions += 1
    step.complete(event.time, event.output, flow.run.completions)
    flow.completed(step)


def _failed(flow: Flow, step: s.StepState, event: AttemptFailed) -> None:
    flow.record(
        "ATTEMPT_FAILED",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        error=event.error,
        **(ai.failed(step, event.error) if step.kind == NodeKind.AI else {}),
    )
    flow.transition.remove.append(step.task_id)
    # The worker's error is kept as it reported it; read through StepError for the decision.
    step.fail(event.error)
    error = s.StepError.from_json(event.error)
    policy = RetryPolicy.from_json(step.retry)
    if not error.retryable or error.type in policy.non_retryable_error_types:
        flow.dead_letter(step, event.error, "non-retryable error")
    elif policy.gives_up_after(step.attempt - step.retry_base):
        flow.dead_letter(step, event.error, f"gave up after {step.attempt} attempts")
    else:
        delay = policy.delay_for(step.attempt - step.retry_base, flow.uniform)
        # The step may know better than the policy (an HTTP Retry-After): never sooner.
        asked = error.retry_after or 0.0
        if asked > delay:
            _retry(flow, step, asked, f"attempt failed; the step asked to retry after {asked:g} s")
        else:
            _retry(flow, step, delay, "attempt failed")


def _lost(flow: Flow, step: s.StepState, event: AttemptLost) -> None:
    flow.record(
        "ATTEMPT_LOST",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        reason=event.reason,
    )
    flow.transition.remove.append(step.task_id)
    policy = RetryPolicy.from_json(step.retry)
    if event.handed_back and step.idempotency != "none":
        # Given back, not failed: the next attempt is not one more of the retry budget.
        step.retry_base += 1
    if step.idempotency == "none":
        # It may have happened: only a human can tell whether running it again is safe.
        error = s.StepError("AttemptLost", event.reason, retryable=False).to_json()
        step.fail(error)
        flow.dead_letter(step, error, "idempotency none: not retried automatically")
        return
    error = s.StepError("AttemptLost", event.reason, retryable=True).to_json()
    step.fail(error)
    if policy.gives_up_after(step.attempt - step.retry_base):
        flow.dead_letter(step, error, f"gave up after {step.attempt} attempts")
    else:
        # The worker, not the step, failed: hand it to another worker at once.
        _retry(flow, step, 0.0, event.reason)


def _retry(flow: Flow, step: s.StepState, delay: float, reason: str) -> None:
    due = flow.time + delay
    step.retry_later(due, delay)
    # An AI step's next attempt knows what the failed ones spent of the run's budget.
    budget = ai.refresh_budget(flow.run, step) if step.kind == NodeKind.AI else None
    flow.record(
        "RETRY_SCHEDULED",
        step.node_id,
        step.attempt,
        delay_seconds=round(delay, 6),
        due_at=due,
        reason=reason,
        **({"budget": budget} if budget is not None else {}),
    )
    flow.queue(step, due)


# -- waits -----------------------------------------------------------------------------------


def _decided(flow: Flow, event: ApprovalDecided) -> None:
    """A decision on an approval node, or on an AI node's review."""
    step = flow.run.steps.get(event.node_id)
    if step is not None and step.kind == NodeKind.AI:
        ai.decide(flow, event)
    else:
        approval.decide(flow, event)


def _timer(flow: Flow, event: TimerFired) -> None:
    kind = nodes.TIMER_NODE_KINDS.get(event.kind)
    step = waiting_step(flow, event.node_id, kind) if kind else None
    if step is None:
        return  # the wait ended before its timer: nothing to do
    spec = flow.definition.nodes[event.node_id]
    nodes.of_spec(spec).timer_fired(flow, step, spec, event)


# -- operators -------------------------------------------------------------------------------


def _cancel(flow: Flow, event: CancelRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL:
        raise RunClosed(f"run {run.id} is already {run.status}")
    flow.cancel_open()
    # A cancellation made by a durable operation (a bulk cancel) names it.
    made_by: dict[str, Any] = {"operation_id": event.operation_id} if event.operation_id else {}
    flow.record("RUN_CANCELLED", principal=event.principal, reason=event.reason, **made_by)
    flow.close(s.CANCELLED, announce=False)


def _abandon(flow: Flow, event: AbandonRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL or run.status == s.COMPENSATING:
        raise RunClosed(f"run {run.id} is already {run.status}")
    why = f"abandoned by {event.principal}" + (f": {event.reason}" if event.reason else "")
    run.last_error = s.StepError("Abandoned", why).to_json()
    saga.start_compensation(flow, why, principal=event.principal, operation_id=event.operation_id)
