"""The node kinds: one module each, and the registry that maps a kind to its behaviour.

Adding a kind: its proto message in surefoot.v1.Node, one module here with its spec and
`NodeType`, an entry in `NODE_TYPES`, and its tests.
"""

from __future__ import annotations

from typing import Any

from surefoot.v1 import definition_pb2

from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.ai import Ai, AiSpec
from controlplane.engine.nodes.approval import Approval, ApprovalSpec
from controlplane.engine.nodes.base import NodeType, NotWaiting, OutputRefused
from controlplane.engine.nodes.compensation import Compensation
from controlplane.engine.nodes.parallel import Parallel, ParallelSpec
from controlplane.engine.nodes.sleep import Sleep, SleepSpec
from controlplane.engine.nodes.switch import Switch, SwitchSpec
from controlplane.engine.nodes.task import Task, TaskSpec
from controlplane.engine.nodes.wait_event import WaitEvent, WaitEventSpec

NodeSpec = TaskSpec | ApprovalSpec | SleepSpec | WaitEventSpec | SwitchSpec | ParallelSpec | AiSpec

# Keyed by the kind's string, which a NodeKind equals: stored steps give plain strings.
NODE_TYPES: dict[str, NodeType[Any]] = {
    node_type.kind: node_type
    for node_type in (
        Task(),
        Approval(),
        Sleep(),
        WaitEvent(),
        Switch(),
        Parallel(),
        Ai(),
        Compensation(),
    )
}

# Kinds a definition declares, by their field of the `kind` oneof of surefoot.v1.Node.
BY_PROTO_FIELD: dict[str, NodeType[Any]] = {
    node_type.proto_field: node_type for node_type in NODE_TYPES.values() if node_type.proto_field
}

# The node kind whose step a timer of each kind wakes.
TIMER_NODE_KINDS: dict[str, NodeKind] = {
    timer: node_type.kind for node_type in NODE_TYPES.values() for timer in node_type.timer_kinds
}


def node_type(kind: str) -> NodeType[Any]:
    """The behaviour of a step's kind (a `StepState.kind`, or a spec's `kind`)."""
    return NODE_TYPES[kind]


def of_spec(spec: NodeSpec) -> NodeType[Any]:
    return NODE_TYPES[spec.kind]


def of_proto(node: definition_pb2.Node) -> NodeType[Any] | None:
    """The kind a definition's node declares; None when it declares none."""
    field = node.WhichOneof("kind")
    return BY_PROTO_FIELD.get(field) if field else None


def compile_node(node: definition_pb2.Node) -> NodeSpec:
    found = of_proto(node)
    # A node without a kind fails validation; compiled as a task it still gets a graph.
    spec: NodeSpec = (found or NODE_TYPES[NodeKind.TASK]).compile(node)
    return spec


__all__ = [
    "BY_PROTO_FIELD",
    "AiSpec",
    "NODE_TYPES",
    "TIMER_NODE_KINDS",
    "ApprovalSpec",
    "NodeSpec",
    "NodeType",
    "NotWaiting",
    "OutputRefused",
    "ParallelSpec",
    "SleepSpec",
    "SwitchSpec",
    "TaskSpec",
    "WaitEventSpec",
    "compile_node",
    "node_type",
    "of_proto",
    "of_spec",
]
