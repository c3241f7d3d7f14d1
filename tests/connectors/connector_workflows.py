"""Workflow definitions of the connector acceptance tests, authored as YAML would be."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

# Short delays, so that a retry the policy schedules is quicker than a Retry-After of 2 s:
# what the test then sees is the service's wish, not the policy's.
QUICK_RETRY = {
    "max_attempts": 3,
    "initial_interval_seconds": 0.2,
    "backoff_coefficient": 2,
    "max_interval_seconds": 1,
    "jitter": 0.1,
}


def task(
    node_id: str, step_type: str, input_expression: str, next_node: str | None = None
) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "task": {
            "step_type": step_type,
            "step_version": "1",
            "input": input_expression,
            "idempotency": "key",
            "retry": QUICK_RETRY,
        },
    }
    if next_node:
        node["next"] = next_node
    return node


def one_call(name: str, step_type: str) -> definition_pb2.WorkflowDefinition:
    """One connector node `call` whose input is the run input."""
    return definition_from_dict(
        {"name": name, "version": "1", "nodes": [task("call", step_type, "input")]}
    )


def signup() -> definition_pb2.WorkflowDefinition:
    """Record a signup in PostgreSQL, email the customer, tell the team on a webhook.

    Each step's input takes from the run input and from the outputs before it, so the test
    sees data flow through three connectors.
    """
    row = "steps.record.output.rows[0]"
    return definition_from_dict(
        {
            "name": "signup",
            "version": "1",
            "nodes": [
                task("record", "surefoot.postgres", "input.record", "mail"),
                task(
                    "mail",
                    "surefoot.smtp",
                    f"merge(input.mail, {{subject: join('', ['Welcome, signup #', "
                    f"to_string({row}.id)])}})",
                    "notify",
                ),
                task(
                    "notify",
                    "surefoot.webhook",
                    f"merge(input.notify, {{text: join('', ['New signup: ', {row}.email])}})",
                ),
            ],
        }
    )
