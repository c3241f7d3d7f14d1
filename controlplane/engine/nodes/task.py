"""A task node: one step a worker runs, with retries, a failure route and a compensation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import (
    NAME_PATTERN,
    Problems,
    expression_problems,
    reference_problems,
    retry_policy_problems,
)
from controlplane.engine.events import ScheduleTask
from controlplane.engine.expressions import evaluate
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.base import NodeType, spec_next
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.step_types import (
    IDEMPOTENCY_NAMES,
    StepCatalog,
    resolve_policy,
    retry_from_proto,
)

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow

FAILURE_POLICIES = {
    definition_pb2.FAILURE_POLICY_UNSPECIFIED: "dead_letter",
    definition_pb2.FAILURE_POLICY_DEAD_LETTER: "dead_letter",
    definition_pb2.FAILURE_POLICY_COMPENSATE: "compensate",
    definition_pb2.FAILURE_POLICY_FAIL: "fail",
}


@dataclass(frozen=True)
class TaskSpec:
    kind: ClassVar[NodeKind] = NodeKind.TASK

    node_id: str
    next: str | None
    step_type: str
    step_version: str
    input_expression: str
    retry: RetryPolicy | None
    idempotency: str | None
    timeout_seconds: float
    on_failure: str
    on_failure_next: str | None
    compensate_step: str = ""
    compensate_input: str = ""
    compensate_idempotency: str | None = None
    compensate_retry: RetryPolicy | None = None

    def evaluate_input(self, context: dict[str, Any]) -> Any:
        return evaluate(self.input_expression, context, default=context["input"])


def resolve_step_policy(spec: TaskSpec, catalog: StepCatalog) -> tuple[str, RetryPolicy] | None:
    return resolve_policy(spec.step_type, spec.step_version, spec.idempotency, spec.retry, catalog)


def task_for(step: s.StepState, available_at: float, timeout: float = 0.0) -> ScheduleTask:
    """The task row of the step's current attempt."""
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


def not_declared(step_type: str) -> s.StepError:
    return s.StepError("StepNotDeclared", f"step type {step_type!r} has no idempotency declaration")


def cancel_attempt(flow: Flow, step: s.StepState) -> None:
    """Drop the attempt's task row and tell a worker that holds it to stop."""
    flow.transition.remove.append(step.task_id)
    flow.transition.cancel.append(step.task_id)


class Task(NodeType[TaskSpec]):
    kind = NodeKind.TASK
    proto_field = "task"

    def compile(self, node: definition_pb2.Node) -> TaskSpec:
        task = node.task
        return TaskSpec(
            node_id=node.id,
            next=spec_next(node),
            step_type=task.step_type,
            step_version=task.step_version,
            input_expression=task.input,
            retry=retry_from_proto(task.retry) if task.HasField("retry") else None,
            idempotency=IDEMPOTENCY_NAMES.get(task.idempotency),
            timeout_seconds=task.timeout_seconds,
            on_failure=FAILURE_POLICIES.get(task.on_failure, "dead_letter"),
            on_failure_next=task.on_failure_next or None,
            compensate_step=task.compensate_step,
            compensate_input=task.compensate_input,
            compensate_idempotency=IDEMPOTENCY_NAMES.get(task.compensate_idempotency),
            compensate_retry=(
                retry_from_proto(task.compensate_retry)
                if task.HasField("compensate_retry")
                else None
            ),
        )

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        task = node.task
        where = f"{where}.task"
        problems: Problems = []
        if not NAME_PATTERN.match(task.step_type):
            problems.append((f"{where}.step_type", f"{label}: step_type is required"))
        problems += expression_problems(f"{where}.input", label, task.input)
        if task.HasField("retry"):
            problems += _labelled(label, retry_policy_problems(f"{where}.retry", task.retry))
        if not 0 <= task.timeout_seconds < float("inf"):
            problems.append((f"{where}.timeout_seconds", f"{label}: must be a finite number >= 0"))
        problems += reference_problems(
            f"{where}.on_failure_next", label, task.on_failure_next, ids, "fallback node"
        )
        if task.idempotency not in IDEMPOTENCY_NAMES and not (
            task.step_type and catalog(task.step_type, task.step_version)
        ):
            problems.append(
                (
                    f"{where}.idempotency",
                    f"{label}: step type {task.step_type!r} has no idempotency declaration; "
                    "set idempotency (key, natural or none) on the node or register the step "
                    "type",
                )
            )
        if task.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE and task.on_failure_next:
            problems.append(
                (f"{where}.on_failure_next", f"{label}: a fallback node and compensate exclude")
            )
        if task.compensate_step:
            problems += _compensation_problems(where, label, task, catalog)
        elif task.compensate_input:
            problems.append((f"{where}.compensate_input", f"{label}: needs compensate_step"))
        return problems

    def successors(self, spec: TaskSpec) -> list[str | None]:
        return [spec.on_failure_next]

    def enter(self, flow: Flow, spec: TaskSpec) -> None:
        resolved = resolve_step_policy(spec, flow.catalog)
        idempotency, retry = resolved if resolved else ("", RetryPolicy())
        step = flow.new_step(
            spec.node_id,
            NodeKind.TASK,
            s.SCHEDULED,
            step_type=spec.step_type,
            step_version=spec.step_version,
            idempotency=idempotency,
            retry=retry.to_json(),
        )
        error: s.StepError | None = None
        try:
            step.input = spec.evaluate_input(flow.run.context())
        except Exception as exc:  # an evaluation error is a definition bug, not a crash
            error = s.StepError("ExpressionError", str(exc))
        if resolved is None:
            error = not_declared(spec.step_type)
        flow.schedule_step(step, spec.timeout_seconds, error)

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        cancel_attempt(flow, step)


def _compensation_problems(
    where: str, label: str, task: definition_pb2.TaskNode, catalog: StepCatalog
) -> Problems:
    problems: Problems = []
    if not NAME_PATTERN.match(task.compensate_step):
        problems.append((f"{where}.compensate_step", f"{label}: not a step type name"))
    problems += expression_problems(f"{where}.compensate_input", label, task.compensate_input)
    if task.HasField("compensate_retry"):
        problems += _labelled(
            label, retry_policy_problems(f"{where}.compensate_retry", task.compensate_retry)
        )
    if task.compensate_idempotency not in IDEMPOTENCY_NAMES and not catalog(
        task.compensate_step, ""
    ):
        problems.append(
            (
                f"{where}.compensate_idempotency",
                f"{label}: compensating step {task.compensate_step!r} has no idempotency "
                "declaration; set compensate_idempotency or register the step type",
            )
        )
    return problems


def _labelled(label: str, problems: Problems) -> Problems:
    return [(where, f"{label}: {message}") for where, message in problems]
