"""The checks a definition must pass to be registered: every problem at once, each naming
its node, as (field path, description) pairs. Each node kind checks its own fields (see
`controlplane.engine.nodes`); this module checks the definition as a whole and its graph."""

from __future__ import annotations

from surefoot.v1 import definition_pb2

from controlplane.engine import nodes
from controlplane.engine.ai_checks import model_problems
from controlplane.engine.checks import (
    NAME_PATTERN,
    NODE_ID_PATTERN,
    VERSION_PATTERN,
    Problems,
    reference_problems,
    retry_policy_problems,
    schema_problems,
)
from controlplane.engine.definition import branch_members, edges
from controlplane.engine.expressions import parse_timestamp
from controlplane.engine.nodes import NodeSpec, ParallelSpec
from controlplane.engine.nodes.approval import ON_TIMEOUT
from controlplane.engine.step_types import StepCatalog

__all__ = [
    "ON_TIMEOUT",
    "Problems",
    "parse_timestamp",
    "retry_policy_problems",
    "validate_definition",
]

KINDS = ", ".join(nodes.BY_PROTO_FIELD)


def validate_definition(proto: definition_pb2.WorkflowDefinition, catalog: StepCatalog) -> Problems:
    problems: Problems = []
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
    if proto.input_schema_json:
        problems.extend(schema_problems(proto.input_schema_json))
    problems.extend(model_problems(proto))
    if not any(_is_reference(field) for field, _ in problems):
        # Reachability and cycles are reported with the other problems, over the references
        # that do resolve.
        compiled = {node.id: nodes.compile_node(node) for node in proto.nodes}
        problems.extend(_graph_problems(proto, compiled, ids))
    return problems


def _is_reference(field: str) -> bool:
    """A problem with ids or node references: graph checks would only repeat it."""
    return field.endswith((".id", "next", ".start")) or "branches" in field


def _node_problems(
    where: str, node: definition_pb2.Node, ids: dict[str, int], catalog: StepCatalog
) -> Problems:
    label = f"node {node.id!r}"
    problems = reference_problems(f"{where}.next", label, node.next, ids, "next node")
    if node.next and node.next == node.id:
        problems.append((f"{where}.next", f"{label}: a node cannot follow itself"))
    node_type = nodes.of_proto(node)
    if node_type is None:
        problems.append((f"{where}.kind", f"{label}: a node needs a kind ({KINDS})"))
    else:
        problems += node_type.problems(where, label, node, ids, catalog)
    return problems


def _graph_problems(
    proto: definition_pb2.WorkflowDefinition, compiled: dict[str, NodeSpec], ids: dict[str, int]
) -> Problems:
    problems = _branch_problems(compiled, ids)
    start = proto.start or proto.nodes[0].id
    graph = {node_id: edges(spec) for node_id, spec in compiled.items()}
    seen = {start}
    frontier = [start]
    while frontier:
        for target in graph[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    for node_id, index in ids.items():
        if node_id not in seen:
            problems.append(
                (f"definition.nodes[{index}]", f"node {node_id!r} is unreachable from {start!r}")
            )
    # A path that never reaches a node without `next` never ends.
    ends = {node_id for node_id, spec in compiled.items() if not spec.next}
    for node_id in ids:
        if node_id in seen and not _reaches_end(node_id, graph, ends, compiled):
            problems.append(
                (
                    f"definition.nodes[{ids[node_id]}]",
                    f"node {node_id!r} is in a cycle without exit",
                )
            )
    return problems


def _branch_problems(compiled: dict[str, NodeSpec], ids: dict[str, int]) -> Problems:
    problems: Problems = []
    claimed: dict[str, str] = {}
    for spec in compiled.values():
        for branch in nodes.of_spec(spec).branches(spec):
            members = branch_members(compiled, branch)
            where = f"definition.nodes[{ids[spec.node_id]}].{spec.kind}"
            if spec.node_id in members:
                problems.append(
                    (where, f"node {spec.node_id!r}: branch {branch!r} leads back to it")
                )
            if spec.next and spec.next in members:
                problems.append(
                    (
                        where,
                        f"node {spec.node_id!r}: branch {branch!r} runs into {spec.next!r}, "
                        "the node after the join; end the branch with a node without next",
                    )
                )
            for member in sorted(members):
                if isinstance(compiled[member], ParallelSpec):
                    problems.append(
                        (where, f"node {spec.node_id!r}: nested parallel {member!r} in a branch")
                    )
                owner = claimed.setdefault(member, f"{spec.node_id}/{branch}")
                if owner != f"{spec.node_id}/{branch}":
                    problems.append(
                        (
                            f"definition.nodes[{ids[member]}]",
                            f"node {member!r} is in two branches ({owner} and "
                            f"{spec.node_id}/{branch})",
                        )
                    )
    return problems


def _reaches_end(
    start: str, graph: dict[str, list[str]], ends: set[str], compiled: dict[str, NodeSpec]
) -> bool:
    seen = {start}
    frontier = [start]
    while frontier:
        current = frontier.pop()
        spec = compiled[current]
        if current in ends and not nodes.of_spec(spec).always_continues(spec):
            return True
        for target in graph[current]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return False
