"""What every node kind provides: the contract between a node module and the engine.

A node kind is one module under `controlplane.engine.nodes` with a spec dataclass and a
`NodeType` that compiles, validates, enters, wakes, cancels and describes it; the registry in
`controlplane.engine.nodes` maps kinds to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import Problems
from controlplane.engine.events import TimerFired
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow

SpecT = TypeVar("SpecT")


class NotWaiting(Exception):
    """The node is not waiting for this (a decided approval, a consumed wait)."""


class OutputRefused(ValueError):
    """A decision's output is missing, not expected, or does not fit the node's schema."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def waiting_step(flow: Flow, node_id: str, kind: NodeKind) -> s.StepState | None:
    """The step of `node_id`, copied for change, if it is a `kind` that still waits."""
    current = flow.run.steps.get(node_id)
    if (
        flow.run.status in s.TERMINAL
        or current is None
        or current.kind != kind
        or current.status != s.STEP_WAITING
    ):
        return None
    return flow.step(node_id)


class NodeType(Generic[SpecT]):
    """The behaviour of one kind of node; the defaults suit a node that never waits."""

    kind: ClassVar[NodeKind]
    # The field of the `kind` oneof in surefoot.v1.Node ("" for kinds no definition names).
    proto_field: ClassVar[str] = ""
    # The durable timers a step of this kind sets.
    timer_kinds: ClassVar[tuple[TimerKind, ...]] = ()

    def compile(self, node: definition_pb2.Node) -> SpecT:
        raise NotImplementedError(f"{self.kind} nodes are not declared in definitions")

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        """What is wrong with the node's own fields (`where` is the node's path)."""
        return []

    def successors(self, spec: SpecT) -> list[str | None]:
        """Nodes the node can lead to besides its `next` (not counting branch starts)."""
        return []

    def branches(self, spec: SpecT) -> list[str]:
        """Starts of the branches the node runs alongside each other."""
        return []

    def always_continues(self, spec: SpecT) -> bool:
        """A node without `next` that still never ends its path."""
        return False

    def enter(self, flow: Flow, spec: SpecT) -> None:
        raise NotImplementedError

    def timer_fired(self, flow: Flow, step: s.StepState, spec: SpecT, event: TimerFired) -> None:
        """One of the node's timers came due while the step waits."""

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        """Close what the step holds open elsewhere (tasks, waits, approvals, timers); its
        status is already CANCELLED."""
        for kind in self.timer_kinds:
            flow.transition.cancel_timers.append((step.node_id, kind))

    def describe_wait(self, step: s.StepState) -> str:
        """What a WAITING step waits for, in words for a person."""
        return f"{step.kind} {step.node_id!r}"


def spec_next(node: definition_pb2.Node) -> str | None:
    return node.next or None
