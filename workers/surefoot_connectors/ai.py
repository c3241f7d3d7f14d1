"""``surefoot.ai``: the model call of a workflow's ``ai`` node (see ``ai_call.py``).

The engine builds the task input from the node (``ai_task_input``); this step runs it. Its
input is checked against the schema below like any connector's, but its secret references
are not resolved everywhere: the input carries run data into a prompt sent to a third
party, so only the connection's ``api_key_secret`` and header values are looked up.
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import RetryPolicy

from surefoot_connectors.ai_call import AiFailure, run_ai_task
from surefoot_connectors.ai_model import STRUCTURED_OUTPUT_MODES
from surefoot_connectors.call import ConnectorCall, ConnectorFailure
from surefoot_connectors.registry import Connector

NON_RETRYABLE = (
    "AiOutputInvalid",
    "AiBudgetExceeded",
    "AiRequestRejected",
    "SecretNotFound",
    "ConnectorInputInvalid",
)

_CONNECTION: dict[str, Any] = {
    "type": "object",
    "required": ["name", "base_url", "model"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "base_url": {"type": "string", "pattern": "^https?://"},
        "model": {"type": "string", "minLength": 1},
        "api_key_secret": {"type": "string"},
        "structured_output": {"enum": ["", *STRUCTURED_OUTPUT_MODES]},
        "input_price_per_million": {"type": "number", "minimum": 0},
        "output_price_per_million": {"type": "number", "minimum": 0},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

INPUT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "surefoot.ai input",
    "description": "built by the engine from an ai node; not written by hand",
    "type": "object",
    "required": ["node", "user_prompt", "output_schema", "models"],
    "additionalProperties": False,
    "properties": {
        "node": {"type": "string", "description": "the ai node's id"},
        "input": {"description": "the templates' `input` variable"},
        "system_prompt": {"type": "string", "description": "Jinja2 template (sandboxed)"},
        "user_prompt": {"type": "string", "minLength": 1, "description": "Jinja2 template"},
        "output_schema": {"type": "object", "description": "JSON Schema the reply must meet"},
        "models": {
            "type": "array",
            "minItems": 1,
            "items": _CONNECTION,
            "description": "the node's model, then its fallback models in order",
        },
        "default_output": {"description": "the output when every model's repairs fail"},
        "max_repairs": {
            "type": "integer",
            "minimum": 0,
            "maximum": 10,
            "default": 2,
            "description": "repair turns per model after an invalid reply",
        },
        "max_tokens": {
            "type": "integer",
            "minimum": 0,
            "description": "completion token limit per call; 0 leaves it to the endpoint",
        },
        "temperature": {"type": "number", "minimum": 0, "description": "sampling temperature"},
        "timeout_seconds": {
            "type": "number",
            "minimum": 0,
            "default": 60,
            "description": "how long one call may take (0: 60)",
        },
        "redact_prompt": {
            "type": "boolean",
            "default": False,
            "description": "keep only the rendered prompt's sha256 in history",
        },
        "budget": {
            "type": "object",
            "description": "the run's AI token and cost limits and what it has used",
            "additionalProperties": False,
            "properties": {
                "max_tokens": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "completion token limit per call; 0 leaves it to the endpoint",
                },
                "max_cost": {"type": "number", "minimum": 0},
                "used_tokens": {"type": "integer", "minimum": 0},
                "used_cost": {"type": "number", "minimum": 0},
            },
        },
    },
}


def call_ai(call: ConnectorCall) -> dict[str, Any]:
    """Run the node's model calls (``run_ai_task``) within the attempt's deadline.

    Raises:
        ConnectorFailure: With the AiFailure's type, retryability, Retry-After and details.
    """
    if call.secrets is None:
        raise RuntimeError("surefoot.ai resolves its own secrets: the call must carry them")
    task_input = dict(call.input)
    given = float(task_input.get("timeout_seconds") or 60.0)
    task_input["timeout_seconds"] = call.timeout(given)
    try:
        return run_ai_task(task_input, call.secrets, call.idempotency_key, call.context.traceparent)
    except AiFailure as failure:
        raise ConnectorFailure(
            failure.message,
            type=failure.error_type,
            retryable=failure.retryable,
            # A model call changes nothing anywhere: calling again is always safe.
            may_have_acted=False,
            retry_after=failure.retry_after or 0.0,
            details=failure.details or None,
        ) from None


CONNECTOR = Connector(
    name="surefoot.ai",
    version="1",
    summary="Call a model (OpenAI-compatible chat completions) for JSON that matches a "
    "schema: invalid replies are repaired, then fallback models, then a default",
    input_schema=INPUT_SCHEMA,
    # The key goes out as Idempotency-Key; a repeated call has no effect beyond its cost.
    idempotency="key",
    retry=RetryPolicy(
        max_attempts=5,
        initial_interval=1.0,
        backoff_coefficient=2.0,
        max_interval=60.0,
        non_retryable_error_types=NON_RETRYABLE,
    ),
    handler=call_ai,
    resolves_secrets=False,
)
