"""A switch node: the first case whose condition holds picks the next node, else the default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import Problems, expression_problems, reference_problems
from controlplane.engine.expressions import evaluate_shown, truthy
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.base import NodeType, spec_next
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


@dataclass(frozen=True)
class SwitchSpec:
    kind: ClassVar[NodeKind] = NodeKind.SWITCH

    node_id: str
    next: str | None
    cases: tuple[tuple[str, str], ...]
    default_next: str | None


class Switch(NodeType[SwitchSpec]):
    kind = NodeKind.SWITCH
    proto_field = "switch"

    def compile(self, node: definition_pb2.Node) -> SwitchSpec:
        cases = tuple((c.condition, c.next) for c in node.switch.cases)
        return SwitchSpec(node.id, spec_next(node), cases, node.switch.default_next or None)

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        where = f"{where}.switch"
        problems: Problems = []
        if not node.switch.cases:
            problems.append((f"{where}.cases", f"{label}: a switch needs cases"))
        for index, case in enumerate(node.switch.cases):
            at = f"{where}.cases[{index}]"
            if not case.condition:
                problems.append((f"{at}.condition", f"{label}: a case needs a condition"))
            problems += expression_problems(f"{at}.condition", label, case.condition)
            if not case.next:
                problems.append((f"{at}.next", f"{label}: a case needs a next node"))
            problems += reference_problems(f"{at}.next", label, case.next, ids, "node")
        problems += reference_problems(
            f"{where}.default_next", label, node.switch.default_next, ids, "node"
        )
        return problems

    def successors(self, spec: SwitchSpec) -> list[str | None]:
        return [n for _, n in spec.cases] + [spec.default_next]

    def always_continues(self, spec: SwitchSpec) -> bool:
        return spec.default_next is not None

    def enter(self, flow: Flow, spec: SwitchSpec) -> None:
        context = flow.run.context()
        chosen: int | None = None
        for index, (condition, _) in enumerate(spec.cases):
            if truthy(evaluate_shown(condition, context)):
                chosen = index
                break
        target = spec.cases[chosen][1] if chosen is not None else (spec.default_next or spec.next)
        step = flow.new_step(spec.node_id, NodeKind.SWITCH, s.STEP_COMPLETED)
        step.data = {"case": chosen, "next": target}
        step.completed_at = flow.time
        flow.record(
            "BRANCH_TAKEN",
            spec.node_id,
            step.attempt,
            case=chosen if chosen is not None else "default",
            next=target,
        )
        flow.advance(spec.node_id, target, None)
