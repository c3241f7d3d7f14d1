"""An AI node as the engine holds it, and the task input its `surefoot.ai` step receives.

Split from the node's behaviour (`ai.py`) because `surefoot eval` builds the same task input
from a definition without running anything: `ai_task_input` is the one place that says what a
model call is asked to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from surefoot.v1 import definition_pb2

from controlplane.engine.expressions import evaluate
from controlplane.engine.kinds import NodeKind
from controlplane.engine.nodes.base import spec_next
from controlplane.engine.nodes.task import FAILURE_POLICIES
from controlplane.engine.retry import RetryPolicy
from controlplane.engine.step_types import retry_from_proto

# The built-in connector step type every AI node runs as.
AI_STEP_TYPE = "surefoot.ai"
AI_STEP_VERSION = "1"
DEFAULT_MAX_REPAIRS = 2
DEFAULT_CALL_TIMEOUT = 60.0
# What the connector declares for "surefoot.ai"; used when no connector worker has declared
# it yet, so that an AI node's retries never depend on which worker connected first.
AI_NON_RETRYABLE = (
    "AiOutputInvalid",
    "AiBudgetExceeded",
    "AiRequestRejected",
    "SecretNotFound",
    "ConnectorInputInvalid",
)
DEFAULT_AI_RETRY = RetryPolicy(
    max_attempts=5,
    initial_interval=1.0,
    backoff_coefficient=2.0,
    max_interval=60.0,
    non_retryable_error_types=AI_NON_RETRYABLE,
)
# The error a model's replies end with when none validated: what a human review answers.
OUTPUT_INVALID = "AiOutputInvalid"

# The last fallback of a node, when it is not a model.
FINAL_DEFAULT = "default"
FINAL_REVIEW = "human_review"
FINAL_DEAD_LETTER = "dead_letter"


@dataclass(frozen=True)
class ReviewSpec:
    """The approval a human-review fallback opens."""

    title: str
    approvers: tuple[str, ...]
    timeout_seconds: float


@dataclass(frozen=True)
class AiSpec:
    kind: ClassVar[NodeKind] = NodeKind.AI

    node_id: str
    next: str | None
    input_expression: str
    system_prompt: str
    user_prompt: str
    # Connection names: the node's model, then each model fallback in order.
    models: tuple[str, ...]
    # The output schema's text; parsed when a task input is built (a registered definition's
    # schema always parses).
    output_schema_json: str
    # "" (dead letter), FINAL_DEFAULT, FINAL_REVIEW or FINAL_DEAD_LETTER.
    final: str
    default_output_json: str
    review: ReviewSpec | None
    max_repairs: int
    max_tokens: int
    temperature: float
    timeout_seconds: float
    redact_prompt: bool
    max_run_tokens: int
    max_run_cost: float
    retry: RetryPolicy | None
    on_failure: str
    on_failure_next: str | None

    def evaluate_input(self, context: dict[str, Any]) -> Any:
        return evaluate(self.input_expression, context, default=context["input"])

    def output_schema(self) -> Any:
        return json.loads(self.output_schema_json) if self.output_schema_json else {}

    def task_input(
        self,
        connections: dict[str, dict[str, Any]],
        value: Any,
        used_tokens: int = 0,
        used_cost: float = 0.0,
    ) -> dict[str, Any]:
        """The `surefoot.ai` task input for `value` (the node's input over the run context)."""
        found: dict[str, Any] = {
            "node": self.node_id,
            "input": value,
            "system_prompt": self.system_prompt,
            "user_prompt": self.user_prompt,
            "output_schema": self.output_schema(),
            "models": [connections[name] for name in self.models if name in connections],
        }
        if self.final == FINAL_DEFAULT:
            found["default_output"] = json.loads(self.default_output_json)
        return found | {
            "max_repairs": self.max_repairs,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "timeout_seconds": self.timeout_seconds,
            "redact_prompt": self.redact_prompt,
            "budget": {
                "max_tokens": self.max_run_tokens,
                "max_cost": self.max_run_cost,
                "used_tokens": used_tokens,
                "used_cost": used_cost,
            },
        }


def compile_ai(node: definition_pb2.Node) -> AiSpec:
    """The spec of an AI node; robust to an invalid node (validation compiles it too)."""
    ai = node.ai
    models = [ai.model]
    final = ""
    default = ""
    review: ReviewSpec | None = None
    for fallback in ai.fallbacks:
        which = fallback.WhichOneof("kind")
        if which == "model":
            models.append(fallback.model)
        elif which == "default_output_json":
            final, default = FINAL_DEFAULT, fallback.default_output_json
        elif which == "human_review":
            final = FINAL_REVIEW
            r = fallback.human_review
            review = ReviewSpec(
                r.title or f"Review the reply of {node.id}", tuple(r.approvers), r.timeout_seconds
            )
        elif which == "dead_letter":
            final = FINAL_DEAD_LETTER
    return AiSpec(
        node_id=node.id,
        next=spec_next(node),
        input_expression=ai.input,
        system_prompt=ai.system_prompt,
        user_prompt=ai.user_prompt,
        models=tuple(models),
        output_schema_json=ai.output_schema_json,
        final=final,
        default_output_json=default,
        review=review,
        max_repairs=ai.max_repairs or DEFAULT_MAX_REPAIRS,
        max_tokens=ai.max_tokens,
        temperature=ai.temperature,
        timeout_seconds=ai.timeout_seconds or DEFAULT_CALL_TIMEOUT,
        redact_prompt=ai.redact_prompt,
        max_run_tokens=ai.max_run_tokens,
        max_run_cost=ai.max_run_cost,
        retry=retry_from_proto(ai.retry) if ai.HasField("retry") else None,
        on_failure=FAILURE_POLICIES.get(ai.on_failure, "dead_letter"),
        on_failure_next=ai.on_failure_next or None,
    )


def connection_json(model: definition_pb2.ModelConnection) -> dict[str, Any]:
    """A model connection as the connector reads it (never a key: only the secret's name)."""
    return {
        "name": model.name,
        "base_url": model.base_url,
        "model": model.model,
        "api_key_secret": model.api_key_secret,
        "structured_output": model.structured_output or "json_schema",
        "input_price_per_million": model.input_price_per_million,
        "output_price_per_million": model.output_price_per_million,
        "headers": dict(model.headers),
    }


def connections_of(definition: definition_pb2.WorkflowDefinition) -> dict[str, dict[str, Any]]:
    return {model.name: connection_json(model) for model in definition.models}


def ai_task_input(
    definition: definition_pb2.WorkflowDefinition,
    node_id: str,
    value: Any,
    used_tokens: int = 0,
    used_cost: float = 0.0,
) -> dict[str, Any]:
    """The task input of AI node `node_id` of a (valid) definition, for `value` (the node's
    input) with the run's AI usage so far; raises KeyError when there is no such AI node."""
    for node in definition.nodes:
        if node.id == node_id and node.WhichOneof("kind") == "ai":
            spec = compile_ai(node)
            return spec.task_input(connections_of(definition), value, used_tokens, used_cost)
    raise KeyError(f"definition has no ai node {node_id!r}")
