"""A compensation: the step a saga runs to undo a completed task, newest first.

Not a node of the definition but a step of the run, keyed "<node>.compensation"; it runs on a
worker like a task and is cancelled like one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from controlplane.engine import state as s
from controlplane.engine.expressions import evaluate
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.base import NodeType
from controlplane.engine.nodes.task import TaskSpec, cancel_attempt, not_declared
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.step_types import StepCatalog, resolve_policy

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


def resolve_compensation_policy(
    spec: TaskSpec, catalog: StepCatalog
) -> tuple[str, RetryPolicy] | None:
    return resolve_policy(
        spec.compensate_step, "", spec.compensate_idempotency, spec.compensate_retry, catalog
    )


class Compensation(NodeType[TaskSpec]):
    kind = NodeKind.COMPENSATION

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        cancel_attempt(flow, step)


def run_next(flow: Flow) -> None:
    """Schedule the compensation first in line, or end the run COMPENSATED when none is left."""
    run = flow.run
    if not run.compensation:
        flow.close(s.COMPENSATED)
        return
    node_id = run.compensation[0]
    spec = flow.definition.task(node_id)
    original = run.steps[node_id]
    key = s.compensation_key(node_id)
    itself = {"input": original.input, "output": original.output}
    error: s.StepError | None = None
    value: Any
    try:
        value = evaluate(spec.compensate_input, run.context() | {"self": itself}, default=itself)
    except Exception as exc:
        value = None
        error = s.StepError("ExpressionError", str(exc))
    resolved = resolve_compensation_policy(spec, flow.catalog)
    if resolved is None:
        error = not_declared(spec.compensate_step)
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
        kind=NodeKind.COMPENSATION,
        data={"compensates": node_id},
    )
    run.steps[key] = step
    run.current_node = key
    flow.schedule_step(step, 0.0, error, compensates=node_id)


def completed(flow: Flow, step: s.StepState) -> None:
    """A compensation finished (or an operator skipped it): on to the next one."""
    run = flow.run
    compensated = step.data.get("compensates", "")
    if compensated in run.steps:
        flow.step(compensated).compensated()
    if run.compensation and run.compensation[0] == compensated:
        run.compensation = run.compensation[1:]
    run_next(flow)
