"""A workflow definition compiled for the engine, and the checks it must pass to be registered."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jmespath
import jmespath.exceptions
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine.retry import (
    DEFAULT_BACKOFF,
    DEFAULT_INITIAL_INTERVAL,
    DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_INTERVAL,
    RetryPolicy,
)

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

    def evaluate_input(self, context: dict[str, Any]) -> Any:
        if not self.input_expression:
            return context["input"]
        return compiled_expression(self.input_expression).search(context)


@dataclass(frozen=True)
class CompiledDefinition:
    name: str
    version: str
    start: str
    nodes: dict[str, TaskSpec]


_EXPRESSIONS: dict[str, Any] = {}


def compiled_expression(source: str) -> Any:
    """A compiled JMESPath expression; definitions are immutable, so compile each once."""
    found = _EXPRESSIONS.get(source)
    if found is None:
        found = jmespath.compile(source)
        _EXPRESSIONS[source] = found
    return found


def retry_from_proto(policy: common_pb2.RetryPolicy) -> RetryPolicy:
    """Fill zero fields with the server defaults."""
    return RetryPolicy(
        max_attempts=policy.max_attempts or DEFAULT_MAX_ATTEMPTS,
        initial_interval=policy.initial_interval_seconds or DEFAULT_INITIAL_INTERVAL,
        backoff_coefficient=policy.backoff_coefficient or DEFAULT_BACKOFF,
        max_interval=policy.max_interval_seconds or DEFAULT_MAX_INTERVAL,
        jitter=policy.jitter if policy.jitter else DEFAULT_JITTER,
        non_retryable_error_types=tuple(policy.non_retryable_error_types),
    )


def compile_definition(proto: definition_pb2.WorkflowDefinition) -> CompiledDefinition:
    """Compile a definition that passed `validate_definition`."""
    nodes: dict[str, TaskSpec] = {}
    for node in proto.nodes:
        task = node.task
        nodes[node.id] = TaskSpec(
            node_id=node.id,
            next=node.next or None,
            step_type=task.step_type,
            step_version=task.step_version,
            input_expression=task.input,
            retry=retry_from_proto(task.retry) if task.HasField("retry") else None,
            idempotency=IDEMPOTENCY_NAMES.get(task.idempotency),
            timeout_seconds=task.timeout_seconds,
            on_failure=FAILURE_POLICIES.get(task.on_failure, "dead_letter"),
            on_failure_next=task.on_failure_next or None,
        )
    start = proto.start or proto.nodes[0].id
    return CompiledDefinition(name=proto.name, version=proto.version, start=start, nodes=nodes)


def resolve_step_policy(spec: TaskSpec, catalog: StepCatalog) -> tuple[str, RetryPolicy] | None:
    """The idempotency mode and retry policy a task runs with: the node's own declaration
    first, then its step type's registration. None when neither declares idempotency."""
    declared = catalog(spec.step_type, spec.step_version)
    idempotency = spec.idempotency or (declared.idempotency if declared else None)
    if idempotency is None:
        return None
    retry = spec.retry or (declared.retry if declared else None) or RetryPolicy()
    return idempotency, retry


def validate_definition(
    proto: definition_pb2.WorkflowDefinition, catalog: StepCatalog
) -> list[tuple[str, str]]:
    """Every problem of a definition at once, as (field path, description) pairs."""
    problems: list[tuple[str, str]] = []
    if not NAME_PATTERN.match(proto.name):
        problems.append(("definition.name", "must be 1-200 letters, digits, '.', '_' or '-'"))
    if not VERSION_PATTERN.match(proto.version):
        problems.append(
            ("definition.version", "must be 1-100 letters, digits, '.', '_', '+' or '-'")
        )
    if not proto.nodes:
        problems.append(("definition.nodes", "a workflow needs at least one node"))
        return problems
    ids: dict[str, int] = {}
    for index, node in enumerate(proto.nodes):
        where = f"definition.nodes[{index}]"
        if not NODE_ID_PATTERN.match(node.id):
            problems.append(
                (f"{where}.id", f"node id {node.id!r} must be letters, digits, '_' or '-'")
            )
        elif node.id in ids:
            problems.append((f"{where}.id", f"node id {node.id!r} is used twice"))
        else:
            ids[node.id] = index
    for index, node in enumerate(proto.nodes):
        problems.extend(_node_problems(f"definition.nodes[{index}]", node, ids, catalog))
    if proto.start and proto.start not in ids:
        problems.append(("definition.start", f"start node {proto.start!r} does not exist"))
    if not problems:
        problems.extend(_reachability_problems(proto, ids))
    if proto.input_schema_json:
        problems.append(
            ("definition.input_schema_json", "input schemas are not supported by this server yet")
        )
    return problems


def _node_problems(
    where: str,
    node: definition_pb2.Node,
    ids: dict[str, int],
    catalog: StepCatalog,
) -> list[tuple[str, str]]:
    label = f"node {node.id!r}"
    problems: list[tuple[str, str]] = []
    if node.next and node.next not in ids:
        problems.append((f"{where}.next", f"{label}: next node {node.next!r} does not exist"))
    if node.next == node.id:
        problems.append((f"{where}.next", f"{label}: a node cannot follow itself"))
    if node.WhichOneof("kind") != "task":
        problems.append((f"{where}.kind", f"{label}: a node needs a kind (task)"))
        return problems
    task = node.task
    if not NAME_PATTERN.match(task.step_type):
        problems.append((f"{where}.task.step_type", f"{label}: step_type is required"))
    if task.input:
        try:
            compiled_expression(task.input)
        except jmespath.exceptions.JMESPathError as exc:
            message = str(exc).splitlines()[0]
            problems.append((f"{where}.task.input", f"{label}: bad expression: {message}"))
    if task.HasField("retry"):
        problems.extend(_retry_problems(f"{where}.task.retry", label, task.retry))
    if task.timeout_seconds < 0:
        problems.append((f"{where}.task.timeout_seconds", f"{label}: must not be negative"))
    if task.on_failure_next and task.on_failure_next not in ids:
        problems.append(
            (
                f"{where}.task.on_failure_next",
                f"{label}: fallback node {task.on_failure_next!r} does not exist",
            )
        )
    if task.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE:
        problems.append((f"{where}.task.on_failure", f"{label}: compensation is not supported yet"))
    if task.compensate_step:
        problems.append(
            (f"{where}.task.compensate_step", f"{label}: compensation is not supported yet")
        )
    if task.idempotency not in IDEMPOTENCY_NAMES and not _declared(task, catalog):
        problems.append(
            (
                f"{where}.task.idempotency",
                f"{label}: step type {task.step_type!r} has no idempotency declaration; "
                "set idempotency (key, natural or none) on the node or register the step type",
            )
        )
    return problems


def _declared(task: definition_pb2.TaskNode, catalog: StepCatalog) -> bool:
    return bool(task.step_type) and catalog(task.step_type, task.step_version) is not None


def _retry_problems(where: str, label: str, retry: common_pb2.RetryPolicy) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if retry.max_attempts < 0:
        problems.append((f"{where}.max_attempts", f"{label}: must not be negative"))
    if retry.initial_interval_seconds < 0 or retry.max_interval_seconds < 0:
        problems.append((f"{where}", f"{label}: intervals must not be negative"))
    if retry.backoff_coefficient and retry.backoff_coefficient < 1:
        problems.append((f"{where}.backoff_coefficient", f"{label}: must be at least 1"))
    if not 0 <= retry.jitter <= 1:
        problems.append((f"{where}.jitter", f"{label}: must be between 0 and 1"))
    return problems


def _reachability_problems(
    proto: definition_pb2.WorkflowDefinition, ids: dict[str, int]
) -> list[tuple[str, str]]:
    edges: dict[str, list[str]] = {}
    ends = {node.id for node in proto.nodes if not node.next}
    for node in proto.nodes:
        edges[node.id] = [t for t in (node.next, node.task.on_failure_next) if t]
    start = proto.start or proto.nodes[0].id
    seen = {start}
    frontier = [start]
    while frontier:
        for target in edges[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    problems = [
        (f"definition.nodes[{ids[n.id]}]", f"node {n.id!r} is unreachable from {start!r}")
        for n in proto.nodes
        if n.id not in seen
    ]
    # A sequential graph with a cycle never ends: every node of it must reach an end.
    for node in proto.nodes:
        if node.id in seen and not _reaches_end(node.id, edges, ends):
            problems.append(
                (
                    f"definition.nodes[{ids[node.id]}]",
                    f"node {node.id!r} is in a cycle without exit",
                )
            )
    return problems


def _reaches_end(start: str, edges: dict[str, list[str]], ends: set[str]) -> bool:
    seen = {start}
    frontier = [start]
    while frontier:
        current = frontier.pop()
        if current in ends:
            return True
        for target in edges[current]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return False
