"""Saga compensation and cancellation: unwinding what a run did and closing what it waits on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.engine import state as s
from controlplane.engine.definition import evaluate, resolve_compensation_policy
from controlplane.engine.events import CloseApproval
from controlplane.engine.retry import RetryPolicy

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


def cancel_open(flow: Flow) -> None:
    """Stop every node the run is at: tasks, waits, timers, approvals, joins."""
    for node_id, current in list(flow.run.steps.items()):
        active = current.status in s.ACTIVE or (
            current.kind == "parallel" and current.status == s.STEP_RUNNING
        )
        if not active:
            continue
        step = flow.step(node_id)
        was = step.status
        step.status = s.STEP_CANCELLED
        step.next_attempt_at = None
        if step.kind in ("task", "compensation"):
            flow.transition.remove.append(step.task_id)
            flow.transition.cancel.append(step.task_id)
        elif step.kind == "approval":
            flow.transition.close_approvals.append(
                CloseApproval(node_id, step.idempotency_key, "WITHDRAWN", "", flow.time)
            )
            flow.transition.cancel_timers.append((node_id, "approval_deadline"))
        elif step.kind == "sleep":
            flow.transition.cancel_timers.append((node_id, "sleep"))
        elif step.kind == "wait_event":
            flow.transition.close_waits.append(node_id)
            flow.transition.cancel_timers.append((node_id, "event_timeout"))
        flow.record("STEP_CANCELLED", node_id, step.attempt, was=was, kind=step.kind)


def start_compensation(flow: Flow, reason: str, principal: str = "system") -> None:
    """Cancel what is open, then run the compensations of completed steps, newest first."""
    from controlplane.engine.flow import close

    cancel_open(flow)
    run = flow.run
    done = [
        step
        for step in run.steps.values()
        if step.kind == "task"
        and step.status == s.STEP_COMPLETED
        and flow.definition.task(step.node_id).compensate_step
    ]
    done.sort(key=lambda step: step.completion_index or 0, reverse=True)
    run.compensation = [step.node_id for step in done]
    flow.record("COMPENSATION_STARTED", reason=reason, order=run.compensation, principal=principal)
    if not run.compensation:
        close(flow, s.COMPENSATED)
        return
    run.status = s.COMPENSATING
    run.waiting_for = None
    run.waiting_since = None
    next_compensation(flow)


def next_compensation(flow: Flow) -> None:
    from controlplane.engine.flow import close, schedule_step

    run = flow.run
    if not run.compensation:
        close(flow, s.COMPENSATED)
        return
    node_id = run.compensation[0]
    spec = flow.definition.task(node_id)
    original = run.steps[node_id]
    key = s.compensation_key(node_id)
    itself = {"input": original.input, "output": original.output}
    error: dict[str, Any] | None = None
    try:
        value = evaluate(spec.compensate_input, run.context() | {"self": itself}, default=itself)
    except Exception as exc:
        value = None
        error = {"type": "ExpressionError", "message": str(exc), "retryable": False}
    resolved = resolve_compensation_policy(spec, flow.catalog)
    if resolved is None:
        error = {
            "type": "StepNotDeclared",
            "message": f"step type {spec.compensate_step!r} has no idempotency declaration",
            "retryable": False,
        }
    idempotency, retry = resolved if resolved else ("", RetryPolicy())
    previous = run.steps.get(key)
    step = s.StepState(
        node_id=key,
        step_type=spec.compensate_step,
        step_version="",
        status=s.SCHEDULED,
        attempt=previous.attempt + 1 if previous else 1,
        idempotency_key=s.idempotency_key_for(run.id, key),
        idempotency=idempotency,
        retry=retry.to_json(),
        input=value,
        scheduled_at=flow.time,
        kind="compensation",
        data={"compensates": node_id},
    )
    run.steps[key] = step
    run.current_node = key
    schedule_step(flow, step, 0.0, error, compensates=node_id)


def compensation_completed(flow: Flow, step: s.StepState) -> None:
    run = flow.run
    compensated = step.data.get("compensates", "")
    if compensated in run.steps:
        flow.step(compensated).status = s.COMPENSATED_STEP
    if run.compensation and run.compensation[0] == compensated:
        run.compensation = run.compensation[1:]
    next_compensation(flow)
