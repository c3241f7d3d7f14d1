"""Re-scoring the replies recorded in real runs against another version's node.

A run's history keeps, for each AI step, the task input the engine built (STEP_SCHEDULED's
data.input, whose "input" is the node's input value) and the connector's result with the
validated output (data["ai"] of the completion). `surefoot eval --recorded` sends those
inputs through the new version's node and scores agreement with what the runs accepted.
It only reads histories: nothing is written to the runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from surefoot.v1 import run_pb2

from controlplane.evaluation.runner import CallUsage, NodeRunner
from controlplane.evaluation.scoring import CaseResult, is_subset

AI_STEP_TYPE = "surefoot.ai"
# Failed attempts carry data["ai"] too (the calls so far), never a validated output.
_NOT_ACCEPTED = {run_pb2.EVENT_TYPE_ATTEMPT_FAILED, run_pb2.EVENT_TYPE_STEP_DEAD_LETTERED}


@dataclass(frozen=True)
class RecordedReply:
    run_id: str
    node_id: str
    input: Any
    output: Any

    @property
    def name(self) -> str:
        return f"{self.run_id}:{self.node_id}"


def recorded_replies(events: Iterable[run_pb2.HistoryEvent]) -> list[RecordedReply]:
    """Each AI step's accepted output in one run's history, with the input it was given."""
    inputs: dict[str, Any] = {}
    found: list[RecordedReply] = []
    for event in events:
        data = _data(event)
        if event.type == run_pb2.EVENT_TYPE_STEP_SCHEDULED:
            task_input = data.get("input")
            if data.get("step_type") == AI_STEP_TYPE and isinstance(task_input, dict):
                inputs[event.node_id] = task_input.get("input")
            continue
        ai = data.get("ai")
        if event.type in _NOT_ACCEPTED or not isinstance(ai, dict) or "output" not in ai:
            continue
        if event.node_id in inputs:
            found.append(
                RecordedReply(event.run_id, event.node_id, inputs[event.node_id], ai["output"])
            )
    return found


def score_recorded(runner: NodeRunner, reply: RecordedReply) -> CaseResult:
    """The new version's output for the recorded input: half for a reply that validates
    against its schema, half for agreeing with the recorded output (equal to it, or
    holding it as a JSON subset)."""
    if reply.node_id not in runner.has_node:
        why = f"the version has no ai node {reply.node_id!r}"
        return CaseResult(reply.name, reply.node_id, False, 0.0, failures=[why])
    result, failure = runner.call_node(reply.node_id, reply.input, reply.name)
    spent = CallUsage.of(result)
    tokens, latency = spent.tokens, spent.latency_ms
    if failure is not None or result is None:
        return CaseResult(
            reply.name,
            reply.node_id,
            False,
            0.0,
            None,
            False,
            [str(failure)],
            False,
            tokens,
            latency,
        )
    output = result["output"]
    agrees = is_subset(reply.output, output)
    failures = [] if agrees else [f"differs from the recorded output {_short(reply.output)}"]
    return CaseResult(
        reply.name,
        reply.node_id,
        agrees,
        1.0 if agrees else 0.5,
        output,
        True,
        failures,
        False,
        tokens,
        latency,
    )


def _data(event: run_pb2.HistoryEvent) -> dict[str, Any]:
    if not event.data.data:
        return {}
    try:
        value = json.loads(event.data.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
