"""Definitions with AI nodes, built as the protobuf a client registers: for the engine's unit
tests, the registration tests and the end-to-end AI tests."""

from __future__ import annotations

import json
from typing import Any

from surefoot.v1 import definition_pb2

from tests.engine.workflow_builders import ON_FAILURE

CATEGORY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "bug", "other"]},
        "urgent": {"type": "boolean"},
    },
    "required": ["category", "urgent"],
    "additionalProperties": False,
}


def connection(
    name: str = "main",
    *,
    base_url: str = "http://127.0.0.1:9/v1",
    model: str = "gpt-test",
    api_key_secret: str = "",
    structured_output: str = "",
    input_price: float = 0.0,
    output_price: float = 0.0,
) -> definition_pb2.ModelConnection:
    return definition_pb2.ModelConnection(
        name=name,
        base_url=base_url,
        model=model,
        api_key_secret=api_key_secret,
        structured_output=structured_output,
        input_price_per_million=input_price,
        output_price_per_million=output_price,
    )


def model_fallback(name: str) -> definition_pb2.AiFallback:
    return definition_pb2.AiFallback(model=name)


def default_fallback(value: Any) -> definition_pb2.AiFallback:
    return definition_pb2.AiFallback(default_output_json=json.dumps(value))


def review_fallback(
    approvers: tuple[str, ...] = ("bob",), timeout_seconds: float = 0.0, title: str = ""
) -> definition_pb2.AiFallback:
    return definition_pb2.AiFallback(
        human_review=definition_pb2.AiHumanReview(
            title=title, approvers=list(approvers), timeout_seconds=timeout_seconds
        )
    )


def dead_letter_fallback() -> definition_pb2.AiFallback:
    return definition_pb2.AiFallback(dead_letter=True)


def ai_node(
    node_id: str = "classify",
    *,
    next: str = "",
    model: str = "main",
    input: str = "input.ticket",
    system_prompt: str = "You sort support tickets.",
    user_prompt: str = "Sort this ticket: {{ input.text }}",
    schema: Any = None,
    fallbacks: tuple[definition_pb2.AiFallback, ...] = (),
    max_repairs: int = 0,
    max_run_tokens: int = 0,
    max_run_cost: float = 0.0,
    redact_prompt: bool = False,
    on_failure: str = "",
    on_failure_next: str = "",
) -> definition_pb2.Node:
    return definition_pb2.Node(
        id=node_id,
        next=next,
        ai=definition_pb2.AiNode(
            input=input,
            system_prompt=system_prompt,
            user_prompt=user_prompt,
            model=model,
            output_schema_json=json.dumps(CATEGORY_SCHEMA if schema is None else schema),
            max_repairs=max_repairs,
            fallbacks=list(fallbacks),
            max_run_tokens=max_run_tokens,
            max_run_cost=max_run_cost,
            redact_prompt=redact_prompt,
            on_failure=ON_FAILURE[on_failure],
            on_failure_next=on_failure_next,
        ),
    )


def ai_workflow(
    *nodes: definition_pb2.Node,
    models: tuple[definition_pb2.ModelConnection, ...] = (),
    name: str = "triage",
    version: str = "1",
) -> definition_pb2.WorkflowDefinition:
    return definition_pb2.WorkflowDefinition(
        name=name, version=version, nodes=list(nodes), models=list(models or (connection(),))
    )


def ai_result(
    output: Any,
    *,
    source: str = "model",
    connection_name: str = "main",
    tokens: int = 30,
    cost: float | None = None,
) -> dict[str, Any]:
    """A `surefoot.ai` step's result as the connector reports it."""
    return {
        "output": output,
        "source": source,
        "connection": connection_name,
        "calls": [],
        "usage": {"tokens": tokens, "cost": cost},
    }


def output_invalid(
    last_reply: str = "not json", errors: tuple[str, ...] = ("reply is not JSON",), tokens: int = 12
) -> dict[str, Any]:
    """The error of a `surefoot.ai` step whose every reply failed validation."""
    details = {
        "calls": [],
        "last_reply": last_reply,
        "errors": list(errors),
        "usage": {"tokens": tokens, "cost": None},
    }
    return {
        "type": "AiOutputInvalid",
        "message": "no reply matched the output schema",
        "retryable": False,
        # As the worker SDK sends it: the traceback, then the facts as one JSON line.
        "details": "Traceback (most recent call last):\n  ...\nAiOutputInvalid\n"
        + json.dumps(details),
    }
