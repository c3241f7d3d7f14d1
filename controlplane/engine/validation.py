"""The checks a definition must pass to be registered: every problem at once, each naming
its node, as (field path, description) pairs."""

from __future__ import annotations

import json
import math
from datetime import datetime

import jmespath.exceptions
import jsonschema
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine.definition import (
    IDEMPOTENCY_NAMES,
    NAME_PATTERN,
    NODE_ID_PATTERN,
    VERSION_PATTERN,
    ApprovalSpec,
    NodeSpec,
    ParallelSpec,
    StepCatalog,
    SwitchSpec,
    _compile_node,
    branch_members,
    compiled_expression,
    successors,
)

Problems = list[tuple[str, str]]

ON_TIMEOUT = {"", "approve", "reject", "escalate"}


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
        problems.extend(_schema_problems(proto.input_schema_json))
    if not any(_is_reference(field) for field, _ in problems):
        # Reachability and cycles are reported with the other problems, over the references
        # that do resolve.
        nodes = {node.id: _compile_node(node) for node in proto.nodes}
        problems.extend(_graph_problems(proto, nodes, ids))
    return problems


def _schema_problems(text: str) -> Problems:
    where = "definition.input_schema_json"
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return [(where, f"is not valid JSON: {exc}")]
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [(where, f"is not a valid JSON Schema: {exc.message}")]
    return []


def _is_reference(field: str) -> bool:
    """A problem with ids or node references: graph checks would only repeat it."""
    return field.endswith((".id", "next", ".start")) or "branches" in field


def _expression(where: str, label: str, source: str) -> Problems:
    if not source:
        return []
    try:
        compiled_expression(source)
    except jmespath.exceptions.JMESPathError as exc:
        message = str(exc).splitlines()[0]
        return [(where, f"{label}: bad expression: {message} (in {source!r})")]
    return []


def _reference(where: str, label: str, target: str, ids: dict[str, int], what: str) -> Problems:
    if target and target not in ids:
        return [(where, f"{label}: {what} {target!r} does not exist")]
    return []


def _node_problems(
    where: str, node: definition_pb2.Node, ids: dict[str, int], catalog: StepCatalog
) -> Problems:
    label = f"node {node.id!r}"
    problems = _reference(f"{where}.next", label, node.next, ids, "next node")
    if node.next and node.next == node.id:
        problems.append((f"{where}.next", f"{label}: a node cannot follow itself"))
    kind = node.WhichOneof("kind")
    if kind is None:
        problems.append(
            (
                f"{where}.kind",
                f"{label}: a node needs a kind (task, approval, sleep, wait_event, switch, "
                "parallel)",
            )
        )
    elif kind == "task":
        problems += _task_problems(f"{where}.task", label, node.task, ids, catalog)
    elif kind == "approval":
        a = node.approval
        for name, source in a.show.items():
            problems += _expression(f"{where}.approval.show[{name}]", label, source)
        if a.timeout_seconds < 0:
            problems.append((f"{where}.approval.timeout_seconds", f"{label}: must be >= 0"))
        if a.on_timeout not in ON_TIMEOUT:
            problems.append(
                (f"{where}.approval.on_timeout", f"{label}: must be approve, reject or escalate")
            )
        if a.on_timeout == "escalate" and not a.escalate_to:
            problems.append(
                (f"{where}.approval.escalate_to", f"{label}: escalation needs escalate_to")
            )
        if a.on_timeout and not a.timeout_seconds:
            problems.append(
                (f"{where}.approval.timeout_seconds", f"{label}: on_timeout needs a timeout")
            )
        problems += _reference(
            f"{where}.approval.approved_next", label, a.approved_next, ids, "node"
        )
        problems += _reference(
            f"{where}.approval.rejected_next", label, a.rejected_next, ids, "node"
        )
    elif kind == "sleep":
        if node.sleep.seconds < 0:
            problems.append((f"{where}.sleep.seconds", f"{label}: must be >= 0"))
        if not node.sleep.seconds and not node.sleep.until:
            problems.append((f"{where}.sleep", f"{label}: give seconds or until"))
        problems += _expression(f"{where}.sleep.until", label, node.sleep.until)
    elif kind == "wait_event":
        w = node.wait_event
        if not NAME_PATTERN.match(w.event_name):
            problems.append((f"{where}.wait_event.event_name", f"{label}: event_name is required"))
        if not w.correlation_key:
            problems.append(
                (f"{where}.wait_event.correlation_key", f"{label}: correlation_key is required")
            )
        problems += _expression(f"{where}.wait_event.correlation_key", label, w.correlation_key)
        if w.timeout_seconds < 0 or w.retention_seconds < 0:
            problems.append((f"{where}.wait_event", f"{label}: durations must be >= 0"))
        problems += _reference(
            f"{where}.wait_event.timeout_next", label, w.timeout_next, ids, "timeout node"
        )
    elif kind == "switch":
        if not node.switch.cases:
            problems.append((f"{where}.switch.cases", f"{label}: a switch needs cases"))
        for index, case in enumerate(node.switch.cases):
            at = f"{where}.switch.cases[{index}]"
            if not case.condition:
                problems.append((f"{at}.condition", f"{label}: a case needs a condition"))
            problems += _expression(f"{at}.condition", label, case.condition)
            if not case.next:
                problems.append((f"{at}.next", f"{label}: a case needs a next node"))
            problems += _reference(f"{at}.next", label, case.next, ids, "node")
        problems += _reference(
            f"{where}.switch.default_next", label, node.switch.default_next, ids, "node"
        )
    elif kind == "parallel":
        p = node.parallel
        if len(p.branches) < 1:
            problems.append((f"{where}.parallel.branches", f"{label}: needs branches"))
        for index, branch in enumerate(p.branches):
            problems += _reference(
                f"{where}.parallel.branches[{index}]", label, branch, ids, "branch start"
            )
        if p.join not in ("", "all"):
            problems.append((f"{where}.parallel.join", f"{label}: join must be 'all'"))
    return problems


def _task_problems(
    where: str,
    label: str,
    task: definition_pb2.TaskNode,
    ids: dict[str, int],
    catalog: StepCatalog,
) -> Problems:
    problems: Problems = []
    if not NAME_PATTERN.match(task.step_type):
        problems.append((f"{where}.step_type", f"{label}: step_type is required"))
    problems += _expression(f"{where}.input", label, task.input)
    if task.HasField("retry"):
        problems += _retry_problems(f"{where}.retry", label, task.retry)
    if not 0 <= task.timeout_seconds < math.inf:
        problems.append((f"{where}.timeout_seconds", f"{label}: must be a finite number >= 0"))
    problems += _reference(
        f"{where}.on_failure_next", label, task.on_failure_next, ids, "fallback node"
    )
    if task.idempotency not in IDEMPOTENCY_NAMES and not (
        task.step_type and catalog(task.step_type, task.step_version)
    ):
        problems.append(
            (
                f"{where}.idempotency",
                f"{label}: step type {task.step_type!r} has no idempotency declaration; "
                "set idempotency (key, natural or none) on the node or register the step type",
            )
        )
    if task.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE and task.on_failure_next:
        problems.append(
            (f"{where}.on_failure_next", f"{label}: a fallback node and compensate exclude")
        )
    if task.compensate_step:
        if not NAME_PATTERN.match(task.compensate_step):
            problems.append((f"{where}.compensate_step", f"{label}: not a step type name"))
        problems += _expression(f"{where}.compensate_input", label, task.compensate_input)
        if task.HasField("compensate_retry"):
            problems += _retry_problems(f"{where}.compensate_retry", label, task.compensate_retry)
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
    elif task.compensate_input:
        problems.append((f"{where}.compensate_input", f"{label}: needs compensate_step"))
    return problems


def _retry_problems(where: str, label: str, retry: common_pb2.RetryPolicy) -> Problems:
    problems: Problems = []
    values = (
        retry.initial_interval_seconds,
        retry.max_interval_seconds,
        retry.backoff_coefficient,
        retry.jitter,
    )
    if not all(math.isfinite(v) for v in values):
        # A NaN or infinite delay gives a due time no timestamp column can hold.
        return [(where, f"{label}: retry values must be finite numbers")]
    if retry.max_attempts < 0:
        problems.append((f"{where}.max_attempts", f"{label}: must not be negative"))
    if retry.initial_interval_seconds < 0 or retry.max_interval_seconds < 0:
        problems.append((f"{where}", f"{label}: intervals must not be negative"))
    if retry.backoff_coefficient and retry.backoff_coefficient < 1:
        problems.append((f"{where}.backoff_coefficient", f"{label}: must be at least 1"))
    if not 0 <= retry.jitter <= 1:
        problems.append((f"{where}.jitter", f"{label}: must be between 0 and 1"))
    return problems


def _graph_problems(
    proto: definition_pb2.WorkflowDefinition, nodes: dict[str, NodeSpec], ids: dict[str, int]
) -> Problems:
    problems: Problems = []
    start = proto.start or proto.nodes[0].id
    claimed: dict[str, str] = {}
    for spec in nodes.values():
        if not isinstance(spec, ParallelSpec):
            continue
        for branch in spec.branches:
            members = branch_members(nodes, branch)
            where = f"definition.nodes[{ids[spec.node_id]}].parallel"
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
                if isinstance(nodes[member], ParallelSpec):
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
    edges = {
        node_id: successors(spec) + (list(spec.branches) if isinstance(spec, ParallelSpec) else [])
        for node_id, spec in nodes.items()
    }
    seen = {start}
    frontier = [start]
    while frontier:
        for target in edges[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    for node_id, index in ids.items():
        if node_id not in seen:
            problems.append(
                (f"definition.nodes[{index}]", f"node {node_id!r} is unreachable from {start!r}")
            )
    # A path that never reaches a node without `next` never ends.
    ends = {node_id for node_id, spec in nodes.items() if not spec.next}
    for node_id in ids:
        if node_id in seen and not _reaches_end(node_id, edges, ends, nodes):
            problems.append(
                (
                    f"definition.nodes[{ids[node_id]}]",
                    f"node {node_id!r} is in a cycle without exit",
                )
            )
    return problems


def _reaches_end(
    start: str, edges: dict[str, list[str]], ends: set[str], nodes: dict[str, NodeSpec]
) -> bool:
    seen = {start}
    frontier = [start]
    while frontier:
        current = frontier.pop()
        if current in ends and not _always_continues(nodes[current]):
            return True
        for target in edges[current]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    return False


def _always_continues(spec: NodeSpec) -> bool:
    """Nodes without `next` that still never end the path: a switch with a default branch,
    and an approval whose approval and rejection both lead on."""
    if isinstance(spec, SwitchSpec):
        return spec.default_next is not None
    if isinstance(spec, ApprovalSpec):
        return spec.approved_next is not None and spec.rejected_next is not None
    return False


def parse_timestamp(value: object) -> float | None:
    """An RFC 3339 timestamp (from a sleep's `until`) as epoch seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()
