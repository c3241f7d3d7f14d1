"""The workflow definitions the end-to-end tests register, authored as YAML would be."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

# Short delays keep retry tests fast; lost attempts are retried at once whatever the policy.
QUICK_RETRY = {
    "max_attempts": 5,
    "initial_interval_seconds": 0.2,
    "backoff_coefficient": 2,
    "max_interval_seconds": 2,
    "jitter": 0.1,
}


def task_node(
    node_id: str,
    next_node: str | None,
    input_expression: str,
    step_type: str = "e2e-work",
    retry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "task": {
            "step_type": step_type,
            "step_version": "1",
            "input": input_expression,
            "idempotency": "key",
            "retry": retry or QUICK_RETRY,
        },
    }
    if next_node:
        node["next"] = next_node
    return node


def shaped_by(source: str, node_id: str) -> str:
    """Input of a node: the trail from `source` merged with the run input's `<node_id>` object.

    So a run input like ``{"trail": [], "b": {"sleep_seconds": 30}}`` shapes step b only.
    """
    return f"merge({{trail: {source}}}, input.{node_id} || `{{}}`)"


def three_steps(name: str, version: str = "1") -> definition_pb2.WorkflowDefinition:
    """a → b → c, each step's trail the previous step's output; b runs on a sync handler."""
    return definition_from_dict(
        {
            "name": name,
            "version": version,
            "description": "three sequential steps whose outputs feed the next one",
            "nodes": [
                task_node("a", "b", shaped_by("input.trail", "a")),
                task_node("b", "c", shaped_by("steps.a.output.trail", "b"), "e2e-work-sync"),
                task_node("c", None, shaped_by("steps.b.output.trail", "c")),
            ],
        }
    )


def single_step(
    name: str, retry: dict[str, Any], step_type: str = "e2e-work"
) -> definition_pb2.WorkflowDefinition:
    """One step shaped by the run input, then a step `after` that must only run if it succeeds."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                task_node("step", "after", "input", step_type, retry),
                task_node("after", None, "{trail: steps.step.output.trail}"),
            ],
        }
    )
