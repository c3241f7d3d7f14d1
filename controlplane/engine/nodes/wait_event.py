"""A wait_event node: the run waits for an event with a name and a correlation key, with an
optional timeout that takes another route or dead-letters the wait."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.checks import (
    NAME_PATTERN,
    Problems,
    expression_problems,
    reference_problems,
)
from controlplane.engine.events import EventReceived, OpenEventWait, TimerCommand, TimerFired
from controlplane.engine.expressions import evaluate_shown
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.nodes.base import NodeType, NotWaiting, spec_next, waiting_step
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow

DEFAULT_EVENT_RETENTION = 86_400.0


@dataclass(frozen=True)
class WaitEventSpec:
    kind: ClassVar[NodeKind] = NodeKind.WAIT_EVENT

    node_id: str
    next: str | None
    event_name: str
    correlation_key: str
    timeout_seconds: float
    timeout_next: str | None
    retention_seconds: float


class WaitEvent(NodeType[WaitEventSpec]):
    kind = NodeKind.WAIT_EVENT
    proto_field = "wait_event"
    timer_kinds = (TimerKind.EVENT_TIMEOUT,)

    def compile(self, node: definition_pb2.Node) -> WaitEventSpec:
        w = node.wait_event
        return WaitEventSpec(
            node.id,
            spec_next(node),
            w.event_name,
            w.correlation_key,
            w.timeout_seconds,
            w.timeout_next or None,
            w.retention_seconds or DEFAULT_EVENT_RETENTION,
        )

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        w = node.wait_event
        where = f"{where}.wait_event"
        problems: Problems = []
        if not NAME_PATTERN.match(w.event_name):
            problems.append((f"{where}.event_name", f"{label}: event_name is required"))
        if not w.correlation_key:
            problems.append((f"{where}.correlation_key", f"{label}: correlation_key is required"))
        problems += expression_problems(f"{where}.correlation_key", label, w.correlation_key)
        if w.timeout_seconds < 0 or w.retention_seconds < 0:
            problems.append((where, f"{label}: durations must be >= 0"))
        problems += reference_problems(
            f"{where}.timeout_next", label, w.timeout_next, ids, "timeout node"
        )
        return problems

    def successors(self, spec: WaitEventSpec) -> list[str | None]:
        return [spec.timeout_next]

    def enter(self, flow: Flow, spec: WaitEventSpec) -> None:
        raw = evaluate_shown(spec.correlation_key, flow.run.context())
        key = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)
        timeout_at = flow.time + spec.timeout_seconds if spec.timeout_seconds else None
        step = flow.new_step(spec.node_id, NodeKind.WAIT_EVENT, s.STEP_WAITING)
        step.data = {
            "event_name": spec.event_name,
            "correlation_key": key,
            "timeout_at": timeout_at,
        }
        flow.record(
            "EVENT_WAIT_STARTED",
            spec.node_id,
            step.attempt,
            event_name=spec.event_name,
            correlation_key=key,
            timeout_at=timeout_at,
        )
        flow.transition.open_waits.append(
            OpenEventWait(spec.node_id, spec.event_name, key, spec.retention_seconds)
        )
        if timeout_at is not None:
            flow.transition.timers.append(
                TimerCommand(spec.node_id, TimerKind.EVENT_TIMEOUT, timeout_at)
            )

    def timer_fired(
        self, flow: Flow, step: s.StepState, spec: WaitEventSpec, event: TimerFired
    ) -> None:
        """No event in time: take the timeout route, or dead-letter the wait."""
        flow.record("WAIT_TIMED_OUT", event.node_id, step.attempt, action="timeout")
        flow.transition.close_waits.append(event.node_id)
        if spec.timeout_next:
            step.complete(event.time, {"timed_out": True})
            flow.enter(spec.timeout_next)
            return
        error = s.StepError(
            "Timeout", f"no event {spec.event_name!r} within {spec.timeout_seconds} s"
        )
        flow.dead_letter(step, error.to_json(), "wait timed out")

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        flow.transition.close_waits.append(step.node_id)
        super().cancel(flow, step)

    def describe_wait(self, step: s.StepState) -> str:
        data = step.data
        return (
            f"event {data.get('event_name')!r} with key {data.get('correlation_key')!r}"
            f" at {step.node_id!r}"
        )


def receive(flow: Flow, event: EventReceived) -> None:
    """The event arrived: the wait completes with its payload, recorded as sent by its sender."""
    step = waiting_step(flow, event.node_id, NodeKind.WAIT_EVENT)
    if step is None:
        raise NotWaiting(f"node {event.node_id!r} is not waiting for an event")
    step.complete(event.time, event.payload)
    flow.record(
        "EVENT_RECEIVED",
        event.node_id,
        step.attempt,
        principal=event.principal,
        event_name=event.event_name,
        correlation_key=event.correlation_key,
        payload=event.payload,
        event_id=event.event_id,
    )
    flow.transition.close_waits.append(event.node_id)
    flow.transition.cancel_timers.append((event.node_id, TimerKind.EVENT_TIMEOUT))
    flow.advance(event.node_id, flow.definition.nodes[event.node_id].next, event.payload)
