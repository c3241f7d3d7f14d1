"""A sleep node: the run waits for a duration or until a time an expression gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import Problems, expression_problems
from controlplane.engine.events import TimerCommand, TimerFired
from controlplane.engine.expressions import evaluate_shown, parse_timestamp
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.nodes.base import NodeType, spec_next
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


@dataclass(frozen=True)
class SleepSpec:
    kind: ClassVar[NodeKind] = NodeKind.SLEEP

    node_id: str
    next: str | None
    seconds: float
    until: str


class Sleep(NodeType[SleepSpec]):
    kind = NodeKind.SLEEP
    proto_field = "sleep"
    timer_kinds = (TimerKind.SLEEP,)

    def compile(self, node: definition_pb2.Node) -> SleepSpec:
        return SleepSpec(node.id, spec_next(node), node.sleep.seconds, node.sleep.until)

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        problems: Problems = []
        if node.sleep.seconds < 0:
            problems.append((f"{where}.sleep.seconds", f"{label}: must be >= 0"))
        if not node.sleep.seconds and not node.sleep.until:
            problems.append((f"{where}.sleep", f"{label}: give seconds or until"))
        problems += expression_problems(f"{where}.sleep.until", label, node.sleep.until)
        return problems

    def enter(self, flow: Flow, spec: SleepSpec) -> None:
        due = flow.time + spec.seconds
        if spec.until:
            parsed = parse_timestamp(evaluate_shown(spec.until, flow.run.context()))
            # An unreadable or past `until` wakes at once rather than never.
            due = max(flow.time, parsed) if parsed is not None else flow.time
        step = flow.new_step(spec.node_id, NodeKind.SLEEP, s.STEP_WAITING)
        step.data = {"due_at": due}
        flow.record("SLEEP_STARTED", spec.node_id, step.attempt, due_at=due)
        flow.transition.timers.append(TimerCommand(spec.node_id, TimerKind.SLEEP, due))

    def timer_fired(
        self, flow: Flow, step: s.StepState, spec: SleepSpec, event: TimerFired
    ) -> None:
        step.complete(event.time)
        flow.record("SLEEP_FIRED", event.node_id, step.attempt, due_at=step.data.get("due_at"))
        flow.advance(event.node_id, spec.next, None)

    def describe_wait(self, step: s.StepState) -> str:
        due = datetime.fromtimestamp(step.data["due_at"], UTC).isoformat(timespec="seconds")
        return f"sleep of {step.node_id!r} until {due}"
