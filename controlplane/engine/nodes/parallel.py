"""A parallel node: runs its branches side by side and joins when every branch has ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import Problems, reference_problems
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.base import NodeType, spec_next
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow


@dataclass(frozen=True)
class ParallelSpec:
    kind: ClassVar[NodeKind] = NodeKind.PARALLEL

    node_id: str
    next: str | None
    branches: tuple[str, ...]


class Parallel(NodeType[ParallelSpec]):
    kind = NodeKind.PARALLEL
    proto_field = "parallel"

    def compile(self, node: definition_pb2.Node) -> ParallelSpec:
        return ParallelSpec(node.id, spec_next(node), tuple(node.parallel.branches))

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        p = node.parallel
        where = f"{where}.parallel"
        problems: Problems = []
        if len(p.branches) < 1:
            problems.append((f"{where}.branches", f"{label}: needs branches"))
        for index, branch in enumerate(p.branches):
            problems += reference_problems(
                f"{where}.branches[{index}]", label, branch, ids, "branch start"
            )
        if p.join not in ("", "all"):
            problems.append((f"{where}.join", f"{label}: join must be 'all'"))
        return problems

    def branches(self, spec: ParallelSpec) -> list[str]:
        return list(spec.branches)

    def enter(self, flow: Flow, spec: ParallelSpec) -> None:
        step = flow.new_step(spec.node_id, NodeKind.PARALLEL, s.STEP_RUNNING)
        step.data = {"open": list(spec.branches)}
        flow.record("PARALLEL_STARTED", spec.node_id, step.attempt, branches=list(spec.branches))
        for branch in spec.branches:
            if flow.run.status not in (s.RUNNING, s.WAITING):
                return  # a branch failed at once and the run is compensating
            flow.enter(branch)


def branch_ended(flow: Flow, parallel_id: str, branch: str) -> None:
    """A branch reached its end: join when it was the last one open."""
    parallel = flow.step(parallel_id)
    if parallel.status != s.STEP_RUNNING:
        return
    parallel.data["open"] = [b for b in parallel.data.get("open", []) if b != branch]
    if parallel.data["open"]:
        return
    outputs = {
        member: step.output
        for member, step in flow.run.steps.items()
        if flow.definition.branch_of.get(member, ("",))[0] == parallel_id
        and step.status == s.STEP_COMPLETED
        and step.kind == NodeKind.TASK
    }
    parallel.complete(flow.time, outputs)
    flow.record("PARALLEL_JOINED", parallel_id, parallel.attempt, outputs=outputs)
    flow.advance(parallel_id, flow.definition.nodes[parallel_id].next, outputs)
