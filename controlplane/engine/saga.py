"""Saga compensation and cancellation: unwinding what a run did and closing what it waits on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.engine import nodes
from controlplane.engine import state as s
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes import compensation

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


def cancel_open(flow: Flow) -> None:
    """Stop every node the run is at: tasks, waits, timers, approvals, joins."""
    for node_id, current in list(flow.run.steps.items()):
        if current.status not in s.ACTIVE:
            continue
        step = flow.step(node_id)
        was = step.status
        step.cancel()
        nodes.node_type(step.kind).cancel(flow, step)
        flow.record("STEP_CANCELLED", node_id, step.attempt, was=was, kind=step.kind)


def start_compensation(
    flow: Flow, reason: str, principal: str = "system", operation_id: str = ""
) -> None:
    """Cancel what is open, then run the compensations of completed steps, newest first."""
    cancel_open(flow)
    run = flow.run
    done = [
        step
        for step in run.steps.values()
        if step.kind == NodeKind.TASK
        and step.status == s.STEP_COMPLETED
        # A fork's reused step ran in its parent run: undoing it is the parent's business.
        and "reused_from" not in step.data
        and flow.definition.task(step.node_id).compensate_step
    ]
    done.sort(key=lambda step: step.completion_index or 0, reverse=True)
    run.compensation = [step.node_id for step in done]
    # An abandonment made by a durable operation (a bulk abandon) names it.
    made_by: dict[str, Any] = {"operation_id": operation_id} if operation_id else {}
    flow.record(
        "COMPENSATION_STARTED",
        reason=reason,
        order=run.compensation,
        principal=principal,
        **made_by,
    )
    if not run.compensation:
        flow.close(s.COMPENSATED)
        return
    run.status = s.COMPENSATING
    run.waiting_for = None
    run.waiting_since = None
    compensation.run_next(flow)


# Kept under their old names for callers outside the engine's node modules.
next_compensation = compensation.run_next
compensation_completed = compensation.completed
