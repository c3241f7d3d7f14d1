"""Forking a run: a new run of the same version that takes the recorded outputs of the steps
completed before a node and executes from that node on (ForkRun).

Which steps are "before" the node is read from the parent's history, not guessed from the
graph: they are the steps completed before the node was first entered, replayed from the
events up to that point (engine/replay.py), so a switch that went one way, a retried step
or an operator's skip are taken as they happened. The fork is a new run with a new id, so
every step it executes has a new idempotency key: it is a new business action, not a retry
of the parent's. Reused steps are recorded (STEP_REUSED) and never executed; a saga in the
fork does not compensate them, since what they did belongs to the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.engine import state as s
from controlplane.engine.definition import CompiledDefinition
from controlplane.engine.events import Transition
from controlplane.engine.kinds import NodeKind
from controlplane.engine.machine import new_run
from controlplane.engine.replay import RecordedEvent, state_at
from controlplane.engine.step_types import StepCatalog

# Events that enter a node: the first of them for a node is where a fork from it cuts.
ENTERING = frozenset(
    {
        "STEP_SCHEDULED",
        "APPROVAL_REQUESTED",
        "SLEEP_STARTED",
        "EVENT_WAIT_STARTED",
        "BRANCH_TAKEN",
        "PARALLEL_STARTED",
    }
)


class ForkRefused(Exception):
    """The node cannot be forked from (never entered, inside a parallel branch)."""


@dataclass(frozen=True)
class ForkPoint:
    """What a fork takes from its parent: the outputs of the steps completed before the node."""

    node_id: str
    # Completed steps before the node, in completion order.
    reused: tuple[s.StepState, ...]


def fork_point(
    definition: CompiledDefinition, parent_id: str, events: list[RecordedEvent], node_id: str
) -> ForkPoint:
    """Where a fork from `node_id` cuts the parent's history `events` (all of it, in order).

    Raises:
        ForkRefused: the parent never entered the node, or it is inside a parallel branch
            (its join would need the branches the fork does not re-execute).
    """
    if node_id in definition.branch_of:
        raise ForkRefused(
            f"node {node_id!r} is inside a parallel branch: fork from the parallel node"
        )
    cut = next(
        (e.seq for e in events if e.node_id == node_id and e.type in ENTERING),
        None,
    )
    if cut is None:
        raise ForkRefused(f"run {parent_id} never entered node {node_id!r}")
    before = state_at(parent_id, "", (e for e in events if e.seq < cut)).state
    done = [
        step
        for step in before.steps.values()
        if step.status == s.STEP_COMPLETED and step.kind != NodeKind.COMPENSATION
    ]
    done.sort(key=lambda step: step.completion_index or 0)
    return ForkPoint(node_id, tuple(done))


def fork_run(
    *,
    run_id: str,
    namespace: str,
    definition: CompiledDefinition,
    parent_id: str,
    point: ForkPoint,
    input: Any,
    time: float,
    catalog: StepCatalog,
    uniform: Callable[[], float],
    request_id: str = "",
    principal: str = "system",
    comment: str = "",
    operation_id: str = "",
) -> tuple[s.RunState, Transition]:
    """The forked run and its first commands: its start, the reused steps, `point.node_id`."""
    flow = new_run(
        run_id,
        namespace,
        definition,
        input,
        time,
        catalog,
        uniform,
        principal,
        request_id,
        forked_from={"run_id": parent_id, "node_id": point.node_id},
        comment=comment,
        # A fork made by a durable operation (a bulk fork) names it in its start.
        **({"operation_id": operation_id} if operation_id else {}),
    )
    run = flow.run
    for parent_step in point.reused:
        run.completions += 1
        step = s.StepState(
            node_id=parent_step.node_id,
            step_type=parent_step.step_type,
            step_version=parent_step.step_version,
            status=s.STEP_COMPLETED,
            attempt=0,
            idempotency_key=s.idempotency_key_for(run_id, parent_step.node_id),
            idempotency=parent_step.idempotency,
            retry={},
            input=parent_step.input,
            scheduled_at=time,
            output=parent_step.output,
            completed_at=time,
            # None: a saga of the fork leaves what the parent did to the parent.
            completion_index=None,
            kind=parent_step.kind,
            data={"reused_from": parent_id},
        )
        run.steps[step.node_id] = step
        flow.record(
            "STEP_REUSED",
            step.node_id,
            principal=principal,
            from_run=parent_id,
            kind=step.kind,
            step_type=step.step_type,
            input=step.input,
            output=step.output,
        )
    flow.enter(point.node_id)
    flow.settle()
    return run, flow.transition
