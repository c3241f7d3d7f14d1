"""The `surefoot.ai` step as the connector worker runs it: the registry's declaration, the
input check, and failures turned into the SDK's errors with their facts in the details."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from surefoot.v1 import definition_pb2
from surefoot_connectors import connector_named
from surefoot_connectors.failure_details import MAX_DETAILS_BYTES, details_line, parse_details
from surefoot_connectors.steps import input_problems
from surefoot_worker import NonRetryableError, RetryLaterError
from surefoot_worker._outcome import failed

from controlplane.engine.nodes.ai import ai_task_input
from controlplane.model_server import ModelServer, Reply
from tests.connectors.connector_calls import StepsFor, run_step

KEY = "sk-step-5d1e0c9b77"


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as model_server:
        yield model_server


def task_input(server: ModelServer, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "node": "classify",
        "input": {"text": "hello"},
        "system_prompt": "",
        "user_prompt": "Classify: {{ input.text }}",
        "output_schema": {"type": "object", "required": ["label"]},
        "models": [
            {
                "name": "main",
                "base_url": server.base_url,
                "model": "main",
                "api_key_secret": "model_key",
                "structured_output": "json_schema",
                "input_price_per_million": 0.0,
                "output_price_per_million": 0.0,
                "headers": {},
            }
        ],
        "max_repairs": 1,
        "max_tokens": 0,
        "temperature": 0.0,
        "timeout_seconds": 10.0,
        "redact_prompt": False,
        "budget": {"max_tokens": 0, "max_cost": 0.0, "used_tokens": 0, "used_cost": 0.0},
    }
    value.update(overrides)
    return value


def test_the_registry_declares_surefoot_ai_as_the_contract_says() -> None:
    ai = connector_named("surefoot.ai")
    assert (ai.version, ai.idempotency, ai.resolves_secrets) == ("1", "key", False)
    retry = ai.retry
    assert (retry.max_attempts, retry.initial_interval) == (5, 1.0)
    assert (retry.backoff_coefficient, retry.max_interval) == (2.0, 60.0)
    assert set(retry.non_retryable_error_types) == {
        "AiOutputInvalid",
        "AiBudgetExceeded",
        "AiRequestRejected",
        "SecretNotFound",
        "ConnectorInputInvalid",
    }


def test_the_engines_task_input_is_what_the_step_accepts() -> None:
    """The contract between the engine and the connector: every field the engine fills in,
    a fallback model, a default and every limit set, passes the step's input schema."""
    schema = {"type": "object", "required": ["label"]}
    node = definition_pb2.Node(
        id="classify",
        ai=definition_pb2.AiNode(
            input="input.ticket",
            system_prompt="Classify.",
            user_prompt="{{ input.text }}",
            model="main",
            output_schema_json=json.dumps(schema),
            max_repairs=3,
            max_tokens=100,
            temperature=0.2,
            timeout_seconds=5,
            redact_prompt=True,
            max_run_tokens=1000,
            max_run_cost=0.5,
            fallbacks=[
                definition_pb2.AiFallback(model="backup"),
                definition_pb2.AiFallback(default_output_json='{"label": "other"}'),
            ],
        ),
    )
    models = [
        definition_pb2.ModelConnection(
            name=name,
            base_url="http://127.0.0.1:1/v1",
            model=name,
            api_key_secret="model_key",
            structured_output=mode,
            input_price_per_million=1.5,
            output_price_per_million=2.5,
            headers={"api-version": "2024-10-21", "X-Org": "${secret:org}"},
        )
        for name, mode in (("main", ""), ("backup", "json_object"))
    ]
    definition = definition_pb2.WorkflowDefinition(
        name="contract", version="1", nodes=[node], start="classify", models=models
    )

    built = ai_task_input(definition, "classify", {"text": "hi"}, used_tokens=10, used_cost=0.1)

    assert input_problems(connector_named("surefoot.ai"), built) == []
    assert [m["name"] for m in built["models"]] == ["main", "backup"]
    assert built["default_output"] == {"label": "other"}
    assert built["budget"] == {
        "max_tokens": 1000,
        "max_cost": 0.5,
        "used_tokens": 10,
        "used_cost": 0.1,
    }


def test_the_step_returns_the_result_and_sends_the_tasks_idempotency_key(
    server: ModelServer, steps_with: StepsFor
) -> None:
    server.script("main", [Reply.json({"label": "bug"})])
    step = steps_with({"MODEL_KEY": KEY})["surefoot.ai"]

    result = run_step(step, task_input(server), key="run-9:classify")

    assert result["output"] == {"label": "bug"}
    assert server.requests()[0].headers["idempotency-key"] == "run-9:classify"


def test_invalid_output_fails_for_good_with_the_facts_as_the_details_last_line(
    server: ModelServer, steps_with: StepsFor
) -> None:
    server.script("main", [Reply.text(f"no {KEY}"), Reply.text("[1, 2]")])
    step = steps_with({"MODEL_KEY": KEY})["surefoot.ai"]

    with pytest.raises(NonRetryableError) as raised:
        run_step(step, task_input(server))

    assert raised.value.type == "AiOutputInvalid"
    # What the SDK sends the control plane: the details end with the facts.
    fail = failed("task-1", 1, raised.value).fail
    assert (fail.error_type, fail.retryable) == ("AiOutputInvalid", False)
    details = parse_details(fail.details)
    assert details is not None
    assert details["last_reply"] == "[1, 2]"
    assert details["errors"] == ["$: [1, 2] is not of type 'object'"]
    assert [c["raw_reply"] for c in details["calls"]] == ["no ***", "[1, 2]"]
    assert KEY not in fail.details + fail.message


def test_a_rate_limit_asks_the_sdk_to_wait_for_retry_after(
    server: ModelServer, steps_with: StepsFor
) -> None:
    server.script("main", [Reply.rate_limited(3)])
    step = steps_with({"MODEL_KEY": KEY})["surefoot.ai"]

    with pytest.raises(RetryLaterError) as raised:
        run_step(step, task_input(server))

    assert (raised.value.type, raised.value.retry_after) == ("AiRateLimited", 3.0)
    fail = failed("task-1", 1, raised.value).fail
    assert fail.retryable and fail.retry_after_seconds == 3.0
    details = parse_details(fail.details)
    assert details is not None and details["calls"][0]["status"] == "http_429"


def test_an_input_the_schema_refuses_is_bad_input_and_calls_nothing(
    server: ModelServer, steps_with: StepsFor
) -> None:
    step = steps_with({"MODEL_KEY": KEY})["surefoot.ai"]

    with pytest.raises(NonRetryableError) as raised:
        run_step(step, task_input(server, models=[], surprise=1))

    assert raised.value.type == "ConnectorInputInvalid"
    assert "input.models" in raised.value.message
    assert server.requests() == []


def test_long_details_are_shortened_to_one_parsable_line() -> None:
    reply = "x" * 5000
    calls = [
        {
            "connection": "main",
            "repair": n,
            "prompt": {"system": "s", "user": "u" * 4000},
            "raw_reply": reply,
            "errors": ["e"] * 10,
        }
        for n in range(6)
    ]
    details = {"calls": calls, "last_reply": reply, "errors": ["bad\nline"], "usage": {}}

    line = details_line(details)

    assert "\n" not in line
    assert len(line.encode()) <= MAX_DETAILS_BYTES
    parsed = parse_details("Traceback ...\nError: message\n" + line + "\n")
    assert parsed is not None
    assert parsed["errors"] == ["bad\nline"] and parsed["truncated"] is True
    assert parsed["calls"][-1]["repair"] == 5  # the last calls are kept
    assert parse_details("Traceback ...\nError: message\n") is None
    assert json.loads(details_line({"usage": {"tokens": 1}})) == {"usage": {"tokens": 1}}
