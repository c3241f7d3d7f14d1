"""An operator's decisions on a dead-lettered step: retry it (as it was or with edited
input) or skip it with a given output. Abandoning the run is `saga`'s.

Both are human actions, so both are history (law 7): who, when, what they saw (the error
the step gave up with) and what they decided.
"""

from __future__ import annotations

from controlplane.engine import state as s
from controlplane.engine.events import StepRetryRequested, StepSkipRequested
from controlplane.engine.flow import Flow
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.ai import refresh_budget


class NotDeadLettered(Exception):
    """The step is not the dead letter the run waits on an operator for."""


def retry(flow: Flow, event: StepRetryRequested) -> None:
    """Run the step again: a new attempt with the same idempotency key (it is the same
    operation), and a fresh retry budget so one more transient failure does not dead-letter
    it again at once. A wait that timed out waits again, with its timeout from now."""
    step = _dead_letter(flow, event.node_id)
    runs_on_a_worker = step.kind in s.WORKER_KINDS
    if not runs_on_a_worker and (event.edit_input or event.forget_outcome):
        raise NotDeadLettered(
            f"step {step.node_id!r} is a {step.kind}: it has no input to edit and no "
            "connector outcome; retry it without them"
        )
    if event.edit_input:
        step.input = event.input
    elif step.kind == NodeKind.AI:
        # What the failed attempts spent counts against the run's budget.
        refresh_budget(flow.run, step)
    flow.record(
        "STEP_RETRIED",
        step.node_id,
        step.attempt + 1,
        principal=event.principal,
        comment=event.comment,
        error=step.last_error,
        **({"input": step.input} if runs_on_a_worker else {}),
        input_edited=event.edit_input,
        forget_connector_outcome=event.forget_outcome,
        **({"operation_id": event.operation_id} if event.operation_id else {}),
    )
    _resume(flow, step)
    if not runs_on_a_worker:
        # Entered anew: a new wait (and approval) with its own key, its timeout from now.
        flow.enter(step.node_id)
        return
    if event.forget_outcome:
        flow.transition.forget_outcomes.append(step.idempotency_key)
    # A retried AI step that fails validation again is reviewed again.
    step.data.pop("reviewed", None)
    step.retry_base = step.attempt
    step.schedule(flow.time)
    flow.queue(step, flow.time)


def skip(flow: Flow, event: StepSkipRequested) -> None:
    """Take the step as completed with `event.output` and go on from it."""
    step = _dead_letter(flow, event.node_id)
    flow.record(
        "STEP_SKIPPED",
        step.node_id,
        step.attempt,
        principal=event.principal,
        comment=event.comment,
        error=step.last_error,
        output=event.output,
    )
    flow.run.completions += 1
    step.complete(flow.time, event.output, flow.run.completions)
    _resume(flow, step)
    flow.completed(step)


def _dead_letter(flow: Flow, node_id: str) -> s.StepState:
    run = flow.run
    if run.status != s.NEEDS_ATTENTION or run.attention is None:
        raise NotDeadLettered(
            f"run {run.id} is {run.status}: only a run that needs attention has a dead letter "
            "to retry or skip"
        )
    if node_id != run.attention:
        raise NotDeadLettered(
            f"step {node_id!r} of run {run.id} is not its dead letter (that is {run.attention!r})"
        )
    return flow.step(node_id)


def _resume(flow: Flow, step: s.StepState) -> None:
    run = flow.run
    run.status = s.COMPENSATING if step.kind == NodeKind.COMPENSATION else s.RUNNING
    run.attention = None
    run.waiting_for = None
    run.waiting_since = None
    run.last_error = None
