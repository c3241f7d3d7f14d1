"""Moving a run through its graph: entering nodes, finishing them, joins and dead letters.

Pure, like the rest of the engine: a `Flow` carries the run being changed, the definition,
the step types, the time of the event and the transition that collects the commands. What
each kind of node does is its module's (`controlplane.engine.nodes`); this is the graph.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controlplane.engine import nodes, saga
from controlplane.engine import state as s
from controlplane.engine.definition import CompiledDefinition
from controlplane.engine.events import NewHistoryEvent, ScheduleTask, Transition
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes import ai, compensation, parallel
from controlplane.engine.nodes.task import task_for
from controlplane.engine.step_types import StepCatalog

Uniform = Callable[[], float]

__all__ = ["Flow", "describe_wait", "task_for"]


@dataclass
class Flow:
    run: s.RunState
    definition: CompiledDefinition
    catalog: StepCatalog
    uniform: Uniform
    time: float
    transition: Transition

    def record(self, type: str, node_id: str = "", attempt: int = 0, **data: Any) -> None:
        principal = data.pop("principal", "system")
        self.transition.events.append(
            NewHistoryEvent(type, self.time, node_id, attempt, principal=principal, data=data)
        )

    def step(self, node_id: str) -> s.StepState:
        """The node's state, copied so it can be changed (the input run stays untouched)."""
        step = dataclasses.replace(self.run.steps[node_id])
        step.data = dict(step.data)
        self.run.steps[node_id] = step
        return step

    def new_step(self, node_id: str, kind: NodeKind, status: str, **fields: Any) -> s.StepState:
        """The step of a node being entered (again: a loop comes back to it)."""
        previous = self.run.steps.get(node_id)
        # Entering a node again continues its attempt numbers, so that a late result of the
        # previous entry is recognised as stale, and takes a new idempotency key: it is a new
        # operation (the next page, the next reminder), which a downstream dedupe must not
        # swallow.
        attempt = previous.attempt + 1 if previous else 1
        entry = previous.entry + 1 if previous else 1
        values: dict[str, Any] = {
            "step_type": "",
            "step_version": "",
            "idempotency": "",
            "retry": {},
            "input": None,
        } | fields
        step = s.StepState(
            node_id=node_id,
            status=status,
            attempt=attempt,
            idempotency_key=s.idempotency_key_for(self.run.id, node_id, entry),
            scheduled_at=self.time,
            kind=kind,
            entry=entry,
            # The node's earlier entries' attempts stay on show, as their numbers continue.
            finished_attempts=previous.finished_attempts if previous else [],
            **values,
        )
        self.run.steps[node_id] = step
        return step

    def enter(self, node_id: str) -> None:
        """Start a node: schedule its task, open its wait, or decide and move on."""
        spec = self.definition.nodes[node_id]
        self.run.current_node = node_id
        nodes.of_spec(spec).enter(self, spec)

    def advance(self, node_id: str, next_node: str | None, output: Any) -> None:
        """A node finished: go to `next_node`, or end its path (branch or run)."""
        if next_node:
            self.enter(next_node)
            return
        owner = self.definition.branch_of.get(node_id)
        if owner is None:
            self.close(s.COMPLETED, output=output)
            return
        parallel.branch_ended(self, *owner)

    def completed(self, step: s.StepState) -> None:
        """A step that runs on a worker completed (or was skipped): move on from it."""
        if step.kind == NodeKind.COMPENSATION:
            compensation.completed(self, step)
            return
        self.advance(step.node_id, self.definition.nodes[step.node_id].next, step.output)

    def schedule_step(
        self, step: s.StepState, timeout: float, error: s.StepError | None, **extra: Any
    ) -> None:
        """Record STEP_SCHEDULED and queue the task (or dead-letter a step that cannot run)."""
        self.record(
            "STEP_SCHEDULED",
            step.node_id,
            step.attempt,
            step_type=step.step_type,
            step_version=step.step_version,
            input=step.input,
            idempotency_key=step.idempotency_key,
            idempotency=step.idempotency,
            task_id=step.task_id,
            **extra,
        )
        if error is not None:
            self.dead_letter(step, error.to_json(), error.type)
            return
        self.transition.schedule.append(task_for(step, self.time, timeout))

    def queue(self, step: s.StepState, available_at: float) -> ScheduleTask:
        """Queue the step's current attempt, to be handed out from `available_at`."""
        task = task_for(step, available_at, self.timeout_of(step))
        self.transition.schedule.append(task)
        return task

    def timeout_of(self, step: s.StepState) -> float:
        """The per-attempt timeout of a step's task node (compensations have none)."""
        spec = self.definition.nodes.get(step.node_id)
        return spec.timeout_seconds if isinstance(spec, nodes.TaskSpec) else 0.0

    def dead_letter(self, step: s.StepState, error: dict[str, Any], reason: str) -> None:
        """A step gave up: route the failure as its node says (an AI node's review first)."""
        is_ai = step.kind == NodeKind.AI
        if is_ai and ai.reviews(self, step, error):
            return
        details = ai.failure_details(error) if is_ai else None
        step.dead_letter(error)
        self.record(
            "STEP_DEAD_LETTERED",
            step.node_id,
            step.attempt,
            error=error,
            reason=reason,
            attempts=step.attempt,
            **({"ai": details} if details is not None else {}),
        )
        run = self.run
        if step.kind not in (NodeKind.TASK, NodeKind.AI):
            self.needs_attention(step, error, reason)
            return
        spec = self.definition.nodes[step.node_id]
        assert isinstance(spec, nodes.TaskSpec | nodes.AiSpec)
        in_branch = step.node_id in self.definition.branch_of
        if spec.on_failure_next:
            self.enter(spec.on_failure_next)
        elif spec.on_failure == "fail":
            run.last_error = error
            self.cancel_open()
            self.close(s.FAILED)
        elif spec.on_failure == "compensate" or in_branch:
            # A parallel join needs every branch: one failing cancels the others and the saga
            # unwinds what completed.
            run.last_error = error
            self.start_compensation(f"step {step.node_id!r} failed: {reason}")
        else:
            self.needs_attention(step, error, reason)

    def needs_attention(self, step: s.StepState, error: dict[str, Any], reason: str) -> None:
        run = self.run
        run.status = s.NEEDS_ATTENTION
        run.attention = step.node_id
        run.last_error = error
        what = "compensation" if step.kind == NodeKind.COMPENSATION else "step"
        run.waiting_for = f"an operator: {what} {step.node_id!r} is dead-lettered ({reason})"
        run.waiting_since = self.time

    def cancel_open(self) -> None:
        saga.cancel_open(self)

    def start_compensation(self, reason: str, principal: str = "system") -> None:
        saga.start_compensation(self, reason, principal)

    def close(self, status: str, *, output: Any = None, announce: bool = True) -> None:
        run = self.run
        run.status = status
        run.closed_at = self.time
        run.output = output
        run.waiting_for = None
        run.waiting_since = None
        if not announce:
            return
        if status == s.COMPLETED:
            self.record("RUN_COMPLETED", output=output)
        elif status == s.COMPENSATED:
            self.record("RUN_COMPENSATED", error=run.last_error)
        else:
            self.record("RUN_FAILED", error=run.last_error)

    def settle(self) -> None:
        """Derive RUNNING or WAITING (and what the run waits for) from its open nodes."""
        run = self.run
        if run.status not in (s.RUNNING, s.WAITING):
            return
        steps = run.steps.values()
        if any(st.status in s.OPEN_STEP and st.kind in s.WORKER_KINDS for st in steps):
            run.status = s.RUNNING
            run.waiting_for = None
            run.waiting_since = None
            return
        waits = [st for st in steps if st.status == s.STEP_WAITING]
        if waits:
            run.status = s.WAITING
            run.waiting_for = "; ".join(describe_wait(st) for st in waits)
            run.waiting_since = min(st.scheduled_at for st in waits)


def describe_wait(step: s.StepState) -> str:
    """What a WAITING step waits for, in words for a person."""
    return nodes.node_type(step.kind).describe_wait(step)
