"""A workflow definition compiled for the engine.

The node kinds themselves (specs, compilation, checks, behaviour) live in
`controlplane.engine.nodes`; this module holds the compiled whole and the graph over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from surefoot.v1 import definition_pb2

from controlplane.engine import nodes
from controlplane.engine.checks import NAME_PATTERN, NODE_ID_PATTERN, VERSION_PATTERN
from controlplane.engine.expressions import compiled_expression, evaluate
from controlplane.engine.nodes import (
    ApprovalSpec,
    NodeSpec,
    ParallelSpec,
    SleepSpec,
    SwitchSpec,
    TaskSpec,
    WaitEventSpec,
)
from controlplane.engine.nodes.ai_spec import AI_STEP_TYPE, AI_STEP_VERSION, connections_of
from controlplane.engine.nodes.compensation import resolve_compensation_policy
from controlplane.engine.nodes.task import FAILURE_POLICIES, resolve_step_policy
from controlplane.engine.nodes.wait_event import DEFAULT_EVENT_RETENTION
from controlplane.engine.step_types import (
    IDEMPOTENCY_NAMES,
    StepCatalog,
    StepDeclaration,
    StepTypes,
    resolve_policy,
    retry_from_proto,
)

__all__ = [
    "DEFAULT_EVENT_RETENTION",
    "FAILURE_POLICIES",
    "IDEMPOTENCY_NAMES",
    "NAME_PATTERN",
    "NODE_ID_PATTERN",
    "VERSION_PATTERN",
    "ApprovalSpec",
    "CompiledDefinition",
    "NodeSpec",
    "ParallelSpec",
    "SleepSpec",
    "StepCatalog",
    "StepDeclaration",
    "StepTypes",
    "SwitchSpec",
    "TaskSpec",
    "WaitEventSpec",
    "branch_members",
    "compile_definition",
    "compiled_expression",
    "evaluate",
    "resolve_compensation_policy",
    "resolve_policy",
    "resolve_step_policy",
    "retry_from_proto",
    "successors",
    "validate_definition",
]

INPUT_TOO_DEEP = "nests deeper than the input schema can check"


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
    # (step type, version) of every task and compensation ("" version: the newest), so the
    # dispatcher can make sure the engine's snapshot of step types has them.
    step_types: frozenset[tuple[str, str]] = frozenset()
    # Model connections by name, as AI nodes' task inputs carry them.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def input_problems(self, value: Any) -> list[tuple[str, str]]:
        """Every way `value` is not a valid run input, as (JSON pointer, message), the most
        relevant first; empty when it is valid. All at once: fixing one error to learn of the
        next is a slow way to build a payload."""
        if self.input_validator is None:
            return []
        try:
            errors = sorted(
                self.input_validator.iter_errors(value),
                key=jsonschema.exceptions.relevance,
                reverse=True,
            )
        except RecursionError:
            # Validation descends with the value; the interpreter's stack is the bound.
            return [("/", INPUT_TOO_DEEP)]
        return [
            ("/" + "/".join(str(part) for part in error.absolute_path), error.message)
            for error in errors
        ]

    def task(self, node_id: str) -> TaskSpec:
        spec = self.nodes[node_id]
        assert isinstance(spec, TaskSpec), f"{node_id} is not a task"
        return spec


def compile_definition(proto: definition_pb2.WorkflowDefinition) -> CompiledDefinition:
    """Compile a definition that passed `validate_definition`."""
    compiled: dict[str, NodeSpec] = {node.id: nodes.compile_node(node) for node in proto.nodes}
    start = proto.start or proto.nodes[0].id
    branch_of: dict[str, tuple[str, str]] = {}
    for spec in compiled.values():
        for branch_start in nodes.of_spec(spec).branches(spec):
            for member in branch_members(compiled, branch_start):
                branch_of.setdefault(member, (spec.node_id, branch_start))
    validator = None
    if proto.input_schema_json:
        schema = json.loads(proto.input_schema_json)
        validator = jsonschema.validators.validator_for(schema)(schema)
    used: set[tuple[str, str]] = set()
    for spec in compiled.values():
        if isinstance(spec, TaskSpec):
            used.add((spec.step_type, spec.step_version))
            if spec.compensate_step:
                used.add((spec.compensate_step, ""))
        elif isinstance(spec, nodes.AiSpec):
            used.add((AI_STEP_TYPE, AI_STEP_VERSION))
    return CompiledDefinition(
        proto.name,
        proto.version,
        start,
        compiled,
        branch_of,
        validator,
        frozenset(used),
        connections_of(proto),
    )


def successors(spec: NodeSpec) -> list[str]:
    """Every node a node can lead to (not counting parallel branch starts)."""
    targets = [spec.next, *nodes.of_spec(spec).successors(spec)]
    return [t for t in targets if t]


def edges(spec: NodeSpec) -> list[str]:
    """Every node a node can lead to, parallel branch starts included."""
    return successors(spec) + nodes.of_spec(spec).branches(spec)


def branch_members(compiled: dict[str, NodeSpec], branch_start: str) -> set[str]:
    """The nodes of a parallel branch: all reachable from its start (nested parallels'
    branches included)."""
    seen = {branch_start}
    frontier = [branch_start]
    while frontier:
        spec = compiled.get(frontier.pop())
        if spec is None:
            continue
        for target in edges(spec):
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return seen


def validate_definition(
    proto: definition_pb2.WorkflowDefinition, catalog: StepCatalog
) -> list[tuple[str, str]]:
    """Every problem of a definition at once (see `controlplane.engine.validation`)."""
    from controlplane.engine.validation import validate_definition as validate

    return validate(proto, catalog)
