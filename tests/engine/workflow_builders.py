"""Building definitions and driving runs through the pure engine, for the engine tests.

Definitions are built as the protobuf a client registers and compiled the way the server
compiles them, so the tests go through the same path as a real run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine import machine
from controlplane.engine.definition import CompiledDefinition, compile_definition
from controlplane.engine.events import (
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunEvent,
    Transition,
)
from controlplane.engine.state import RunState
from controlplane.engine.step_types import StepCatalog, StepDeclaration, StepTypes

IDEMPOTENCY = {
    "key": common_pb2.IDEMPOTENCY_KEY,
    "natural": common_pb2.IDEMPOTENCY_NATURAL,
    "none": common_pb2.IDEMPOTENCY_NONE,
}

ON_FAILURE = {
    "": definition_pb2.FAILURE_POLICY_UNSPECIFIED,
    "dead_letter": definition_pb2.FAILURE_POLICY_DEAD_LETTER,
    "fail": definition_pb2.FAILURE_POLICY_FAIL,
    "compensate": definition_pb2.FAILURE_POLICY_COMPENSATE,
}

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


def task_node(
    node_id: str,
    *,
    next: str = "",
    step_type: str = "charge-card",
    step_version: str = "",
    input: str = "",
    idempotency: str = "key",
    retry: common_pb2.RetryPolicy | None = None,
    timeout_seconds: float = 0.0,
    on_failure: str = "",
    on_failure_next: str = "",
) -> definition_pb2.Node:
    """A task node; idempotency "" leaves it to the step type's registration."""
    task = definition_pb2.TaskNode(
        step_type=step_type,
        step_version=step_version,
        input=input,
        idempotency=IDEMPOTENCY[idempotency] if idempotency else common_pb2.IDEMPOTENCY_UNSPECIFIED,
        timeout_seconds=timeout_seconds,
        on_failure=ON_FAILURE[on_failure],
        on_failure_next=on_failure_next,
    )
    if retry is not None:
        task.retry.CopyFrom(retry)
    return definition_pb2.Node(id=node_id, next=next, task=task)


def approval_node(
    node_id: str,
    *,
    next: str = "",
    approvers: tuple[str, ...] = ("bob",),
    timeout_seconds: float = 0.0,
    on_timeout: str = "",
    escalate_to: tuple[str, ...] = (),
    approved_next: str = "",
    rejected_next: str = "",
    show: dict[str, str] | None = None,
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id,
        next=next,
        approval=definition_pb2.ApprovalNode(
            title=f"approve {node_id}",
            approvers=list(approvers),
            show=show or {},
            timeout_seconds=timeout_seconds,
            on_timeout=on_timeout,
            escalate_to=list(escalate_to),
            approved_next=approved_next,
            rejected_next=rejected_next,
        ),
    )


def sleep_node(
    node_id: str, *, next: str = "", seconds: float = 0.0, until: str = ""
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id, next=next, sleep=definition_pb2.SleepNode(seconds=seconds, until=until)
    )


def wait_node(
    node_id: str,
    *,
    next: str = "",
    event_name: str = "paid",
    correlation_key: str = "input.order",
    timeout_seconds: float = 0.0,
    timeout_next: str = "",
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id,
        next=next,
        wait_event=definition_pb2.WaitEventNode(
            event_name=event_name,
            correlation_key=correlation_key,
            timeout_seconds=timeout_seconds,
            timeout_next=timeout_next,
        ),
    )


def switch_node(
    node_id: str, cases: list[tuple[str, str]], *, default_next: str = "", next: str = ""
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id,
        next=next,
        switch=definition_pb2.SwitchNode(
            cases=[definition_pb2.SwitchNode.Case(condition=c, next=n) for c, n in cases],
            default_next=default_next,
        ),
    )


def parallel_node(node_id: str, branches: list[str], *, next: str = "") -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id, next=next, parallel=definition_pb2.ParallelNode(branches=branches)
    )


def compensated(
    node: definition_pb2.Node, step: str = "undo", input: str = ""
) -> definition_pb2.Node:
    """The task node with a compensating step (idempotency key)."""
    node.task.compensate_step = step
    node.task.compensate_input = input
    node.task.compensate_idempotency = common_pb2.IDEMPOTENCY_KEY
    return node


def workflow(
    *nodes: definition_pb2.Node, name: str = "orders", version: str = "1", start: str = ""
) -> definition_pb2.WorkflowDefinition:
    return definition_pb2.WorkflowDefinition(
        name=name, version=version, nodes=list(nodes), start=start
    )


def retry_policy(
    max_attempts: int = 3,
    initial: float = 1.0,
    backoff: float = 2.0,
    max_interval: float = 60.0,
    jitter: float = 0.2,
    non_retryable: tuple[str, ...] = (),
) -> common_pb2.RetryPolicy:
    return common_pb2.RetryPolicy(
        max_attempts=max_attempts,
        initial_interval_seconds=initial,
        backoff_coefficient=backoff,
        max_interval_seconds=max_interval,
        jitter=jitter,
        non_retryable_error_types=list(non_retryable),
    )


def catalog_of(declarations: Mapping[str, StepDeclaration]) -> StepTypes:
    """The snapshot of step types the store would hand the engine: each given step type
    registered as version "1" (so a node without a pinned version finds it)."""
    return StepTypes.of((name, "1", declared) for name, declared in declarations.items())


NO_STEP_TYPES: StepTypes = catalog_of({})


def error(type: str = "Timeout", *, retryable: bool = True, message: str = "") -> dict[str, Any]:
    return {"type": type, "message": message or f"{type} happened", "retryable": retryable}


def completed(node: str, attempt: int, output: Any, time: float, **kw: Any) -> AttemptCompleted:
    return AttemptCompleted(node_id=node, attempt=attempt, output=output, time=time, **kw)


def failed(node: str, attempt: int, err: dict[str, Any], time: float) -> AttemptFailed:
    return AttemptFailed(node_id=node, attempt=attempt, error=err, time=time)


def lost(node: str, attempt: int, time: float, reason: str = "lease expired") -> AttemptLost:
    return AttemptLost(node_id=node, attempt=attempt, reason=reason, time=time)


def cancel(time: float, principal: str = "alice", reason: str = "ordered twice") -> CancelRequested:
    return CancelRequested(reason=reason, principal=principal, time=time)


@dataclass
class DrivenRun:
    """A run held in memory and moved on by events, as the committer would do with the store."""

    definition: CompiledDefinition
    catalog: StepCatalog
    run: RunState
    started: Transition
    uniform: Callable[[], float] = field(default=lambda: 0.5)

    def send(self, event: RunEvent) -> Transition:
        self.run, transition = machine.apply(
            self.run, event, self.definition, self.catalog, self.uniform
        )
        return transition


def start(
    proto: definition_pb2.WorkflowDefinition,
    input: Any = None,
    *,
    catalog: StepCatalog = NO_STEP_TYPES,
    run_id: str = "run-1",
    time: float = T0,
    uniform: Callable[[], float] = lambda: 0.5,
) -> DrivenRun:
    definition = compile_definition(proto)
    run, transition = machine.start_run(
        run_id=run_id,
        namespace="default",
        definition=definition,
        input=input,
        time=time,
        catalog=catalog,
        uniform=uniform,
        request_id="req-1",
        principal="alice",
    )
    return DrivenRun(definition, catalog, run, transition, uniform)


def event_types(transition: Transition) -> list[str]:
    return [event.type for event in transition.events]
