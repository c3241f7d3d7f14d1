"""A workflow definition compiled for the engine, and the checks it must pass to be registered."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jmespath
import jmespath.exceptions
import jsonschema
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine.retry import (
    DEFAULT_BACKOFF,
    DEFAULT_INITIAL_INTERVAL,
    DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_INTERVAL,
    RetryPolicy,
)

DEFAULT_EVENT_RETENTION = 86_400.0

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
# Node ids end up in task ids ("<run>:<node>:<attempt>"), so ':' is not allowed.
NODE_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")

IDEMPOTENCY_NAMES = {
    common_pb2.IDEMPOTENCY_KEY: "key",
    common_pb2.IDEMPOTENCY_NATURAL: "natural",
    common_pb2.IDEMPOTENCY_NONE: "none",
}

FAILURE_POLICIES = {
    definition_pb2.FAILURE_POLICY_UNSPECIFIED: "dead_letter",
    definition_pb2.FAILURE_POLICY_DEAD_LETTER: "dead_letter",
    definition_pb2.FAILURE_POLICY_COMPENSATE: "compensate",
    definition_pb2.FAILURE_POLICY_FAIL: "fail",
}


@dataclass(frozen=True)
class StepDeclaration:
    """What a worker declared for a step type: how it handles retry."""

    idempotency: str
    retry: RetryPolicy


StepCatalog = Callable[[str, str], StepDeclaration | None]
"""Look up a step type's declaration by (name, version); version "" means any version."""


@dataclass(frozen=True)
class TaskSpec:
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


@dataclass(frozen=True)
class ApprovalSpec:
    node_id: str
    next: str | None
    title: str
    approvers: tuple[str, ...]
    show: tuple[tuple[str, str], ...]
    timeout_seconds: float
    on_timeout: str
    escalate_to: tuple[str, ...]
    approved_next: str | None
    rejected_next: str | None


@dataclass(frozen=True)
class SleepSpec:
    node_id: str
    next: str | None
    seconds: float
    until: str


@dataclass(frozen=True)
class WaitEventSpec:
    node_id: str
    next: str | None
    event_name: str
    correlation_key: str
    timeout_seconds: float
    timeout_next: str | None
    retention_seconds: float


@dataclass(frozen=True)
class SwitchSpec:
    node_id: str
    next: str | None
    cases: tuple[tuple[str, str], ...]
    default_next: str | None


@dataclass(frozen=True)
class ParallelSpec:
    node_id: str
    next: str | None
    branches: tuple[str, ...]


NodeSpec = TaskSpec | ApprovalSpec | SleepSpec | WaitEventSpec | SwitchSpec | ParallelSpec


@dataclass(frozen=True)
class CompiledDefinition:
    name: str
    version: str
    start: str
    nodes: dict[str, NodeSpec]
    # Node id -> (parallel node, branch start) of the branch it belongs to.
    branch_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    # A jsonschema validator for the run input, when the workflow declares a schema.
    input_validator: Any = None

    def input_problems(self, value: Any) -> list[tuple[str, str]]:
        """Every way `value` is not a valid run input, as (JSON pointer, message), the most
        relevant first; empty when it is valid. All at once: fixing one error to learn of the
        next is a slow way to build a payload."""
        if self.input_validator is None:
            return []
        errors = sorted(
            self.input_validator.iter_errors(value),
            key=jsonschema.exceptions.relevance,
            reverse=True,
        )
        return [
            ("/" + "/".join(str(part) for part in error.absolute_path), error.message)
            for error in errors
        ]

    def task(self, node_id: str) -> TaskSpec:
        spec = self.nodes[node_id]
        assert isinstance(spec, TaskSpec), f"{node_id} is not a task"
        return spec


_EXPRESSIONS: dict[str, Any] = {}


def compiled_expression(source: str) -> Any:
    """A compiled JMESPath expression; definitions are immutable, so compile each once."""
    found = _EXPRESSIONS.get(source)
    if found is None:
        found = jmespath.compile(source)
        _EXPRESSIONS[source] = found
    return found


def evaluate(source: str, context: dict[str, Any], default: Any = None) -> Any:
    """Evaluate a JMESPath expression over the run context ("" gives `default`)."""
    if not source:
        return default
    return compiled_expression(source).search(context)


def retry_from_proto(policy: common_pb2.RetryPolicy) -> RetryPolicy:
    """Fill zero fields with the server defaults."""
    return RetryPolicy(
        max_attempts=policy.max_attempts or DEFAULT_MAX_ATTEMPTS,
        initial_interval=policy.initial_interval_seconds or DEFAULT_INITIAL_INTERVAL,
        backoff_coefficient=policy.backoff_coefficient or DEFAULT_BACKOFF,
        max_interval=policy.max_interval_seconds or DEFAULT_MAX_INTERVAL,
        jitter=policy.jitter if policy.HasField("jitter") else DEFAULT_JITTER,
        non_retryable_error_types=tuple(policy.non_retryable_error_types),
    )


def compile_definition(proto: definition_pb2.WorkflowDefinition) -> CompiledDefinition:
    """Compile a definition that passed `validate_definition`."""
    nodes: dict[str, NodeSpec] = {node.id: _compile_node(node) for node in proto.nodes}
    start = proto.start or proto.nodes[0].id
    branch_of: dict[str, tuple[str, str]] = {}
    for spec in nodes.values():
        if isinstance(spec, ParallelSpec):
            for branch_start in spec.branches:
                for member in branch_members(nodes, branch_start):
                    branch_of.setdefault(member, (spec.node_id, branch_start))
    validator = None
    if proto.input_schema_json:
        schema = json.loads(proto.input_schema_json)
        validator = jsonschema.validators.validator_for(schema)(schema)
    return CompiledDefinition(proto.name, proto.version, start, nodes, branch_of, validator)


def successors(spec: NodeSpec) -> list[str]:
    """Every node a node can lead to (not counting parallel branch starts)."""
    targets: list[str | None] = [spec.next]
    if isinstance(spec, TaskSpec):
        targets.append(spec.on_failure_next)
    elif isinstance(spec, ApprovalSpec):
        targets += [spec.approved_next, spec.rejected_next]
    elif isinstance(spec, WaitEventSpec):
        targets.append(spec.timeout_next)
    elif isinstance(spec, SwitchSpec):
        targets += [n for _, n in spec.cases] + [spec.default_next]
    return [t for t in targets if t]


def branch_members(nodes: dict[str, NodeSpec], branch_start: str) -> set[str]:
    """The nodes of a parallel branch: all reachable from its start (nested parallels'
    branches included)."""
    seen = {branch_start}
    frontier = [branch_start]
    while frontier:
        spec = nodes.get(frontier.pop())
        if spec is None:
            continue
        targets = successors(spec)
        if isinstance(spec, ParallelSpec):
            targets += list(spec.branches)
        for target in targets:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def _compile_node(node: definition_pb2.Node) -> NodeSpec:
    kind = node.WhichOneof("kind")
    after = node.next or None
    if kind == "approval":
        a = node.approval
        return ApprovalSpec(
            node.id,
            after,
            a.title or node.id,
            tuple(a.approvers),
            tuple(sorted(a.show.items())),
            a.timeout_seconds,
            a.on_timeout,
            tuple(a.escalate_to),
            a.approved_next or None,
            a.rejected_next or None,
        )
    if kind == "sleep":
        return SleepSpec(node.id, after, node.sleep.seconds, node.sleep.until)
    if kind == "wait_event":
        w = node.wait_event
        return WaitEventSpec(
            node.id,
            after,
            w.event_name,
            w.correlation_key,
            w.timeout_seconds,
            w.timeout_next or None,
            w.retention_seconds or DEFAULT_EVENT_RETENTION,
        )
    if kind == "switch":
        cases = tuple((c.condition, c.next) for c in node.switch.cases)
        return SwitchSpec(node.id, after, cases, node.switch.default_next or None)
    if kind == "parallel":
        return ParallelSpec(node.id, after, tuple(node.parallel.branches))
    task = node.task
    return TaskSpec(
        node_id=node.id,
        next=after,
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
            retry_from_proto(task.compensate_retry) if task.HasField("compensate_retry") else None
        ),
    )


def resolve_policy(
    step_type: str,
    step_version: str,
    idempotency: str | None,
    retry: RetryPolicy | None,
    catalog: StepCatalog,
) -> tuple[str, RetryPolicy] | None:
    """The idempotency mode and retry policy a step runs with: the node's own declaration
    first, then its step type's registration. None when neither declares idempotency."""
    declared = catalog(step_type, step_version)
    mode = idempotency or (declared.idempotency if declared else None)
    if mode is None:
        return None
    return mode, retry or (declared.retry if declared else None) or RetryPolicy()


def resolve_step_policy(spec: TaskSpec, catalog: StepCatalog) -> tuple[str, RetryPolicy] | None:
    return resolve_policy(spec.step_type, spec.step_version, spec.idempotency, spec.retry, catalog)


def resolve_compensation_policy(
    spec: TaskSpec, catalog: StepCatalog
) -> tuple[str, RetryPolicy] | None:
    return resolve_policy(
        spec.compensate_step, "", spec.compensate_idempotency, spec.compensate_retry, catalog
    )


def validate_definition(
    proto: definition_pb2.WorkflowDefinition, catalog: StepCatalog
) -> list[tuple[str, str]]:
    """Every problem of a definition at once (see `controlplane.engine.validation`)."""
    from controlplane.engine.validation import validate_definition as validate

    return validate(proto, catalog)
