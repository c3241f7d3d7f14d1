"""run_ai_task against a real local OpenAI-compatible server (controlplane/model_server.py):
valid replies, repair turns, fallback models, the default, and what each call records."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from surefoot_connectors.ai_call import AiFailure, run_ai_task
from surefoot_connectors.secrets import Secrets

from controlplane.model_server import ModelServer, Reply

KEY = "sk-unit-0123456789abcdef"
SECRETS = Secrets({"MODEL_KEY": KEY, "ORG": "org-secret-42"})
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "additionalProperties": False,
    "properties": {"label": {"enum": ["bug", "billing"]}},
}
SYSTEM = "You classify tickets."
USER = "Ticket from {{ input.customer }}: {{ input.text | upper }}"


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as model_server:
        yield model_server


def connection(server: ModelServer, name: str = "main", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": server.base_url,
        "model": name,
        "api_key_secret": "model_key",
        "structured_output": "json_schema",
        "input_price_per_million": 0.0,
        "output_price_per_million": 0.0,
        "headers": {},
        **fields,
    }


def task_input(server: ModelServer, **overrides: Any) -> dict[str, Any]:
    """A task input as the engine builds it, for one model `main`."""
    value: dict[str, Any] = {
        "node": "classify",
        "input": {"customer": "ada", "text": "charged twice"},
        "system_prompt": SYSTEM,
        "user_prompt": USER,
        "output_schema": SCHEMA,
        "models": [connection(server)],
        "max_repairs": 2,
        "max_tokens": 0,
        "temperature": 0.0,
        "timeout_seconds": 10.0,
        "redact_prompt": False,
        "budget": {"max_tokens": 0, "max_cost": 0.0, "used_tokens": 0, "used_cost": 0.0},
    }
    value.update(overrides)
    return value


def test_a_valid_reply_is_the_output_and_the_call_is_recorded_whole(server: ModelServer) -> None:
    server.script("main", [Reply.json({"label": "billing"}, tokens=(120, 7))])
    given = task_input(
        server,
        models=[
            connection(
                server,
                input_price_per_million=2.0,
                output_price_per_million=10.0,
                headers={"OpenAI-Organization": "${secret:org}", "api-version": "2024-10-21"},
            )
        ],
        max_tokens=50,
        temperature=0.3,
    )

    result = run_ai_task(given, SECRETS, "run-1:classify", traceparent="00-" + "a" * 32 + "-01")

    assert result["output"] == {"label": "billing"}
    assert (result["source"], result["connection"]) == ("model", "main")
    (call,) = result["calls"]
    user = "Ticket from ada: CHARGED TWICE"
    assert call["prompt"] == {"system": SYSTEM, "user": user}
    assert call["prompt_sha256"] == hashlib.sha256((SYSTEM + user).encode()).hexdigest()
    assert call["raw_reply"] == json.dumps({"label": "billing"})
    assert (call["valid"], call["errors"], call["status"]) == (True, [], "ok")
    assert (call["connection"], call["model"], call["repair"]) == ("main", "main", 0)
    assert (call["tokens_in"], call["tokens_out"]) == (120, 7)
    assert call["cost"] == pytest.approx((120 * 2.0 + 7 * 10.0) / 1e6)
    assert call["latency_ms"] >= 0
    assert result["usage"] == {"tokens": 127, "cost": call["cost"]}
    # What the endpoint received: the key, the idempotency key, the trace, the headers.
    (request,) = server.requests("main")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["idempotency-key"] == "run-1:classify"
    assert request.headers["traceparent"] == "00-" + "a" * 32 + "-01"
    assert request.headers["openai-organization"] == "org-secret-42"
    assert request.headers["api-version"] == "2024-10-21"
    assert request.messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user},
    ]
    assert request.body["max_tokens"] == 50
    assert request.body["temperature"] == 0.3
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "classify", "schema": SCHEMA, "strict": True},
    }


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("json_object", {"type": "json_object"}), ("none", None)],
)
def test_structured_output_is_asked_as_the_connection_says(
    server: ModelServer, mode: str, expected: dict[str, Any] | None
) -> None:
    server.script("main", [Reply.json({"label": "bug"})])
    given = task_input(server, models=[connection(server, structured_output=mode)])

    run_ai_task(given, SECRETS, "k")

    (request,) = server.requests("main")
    assert request.body.get("response_format") == expected
    assert "max_tokens" not in request.body  # 0: left to the endpoint


def test_invalid_json_is_repaired_on_the_second_try_with_the_errors_sent_back(
    server: ModelServer,
) -> None:
    server.script("main", [Reply.text("Sure! It is a bug."), Reply.json({"label": "bug"})])

    result = run_ai_task(task_input(server), SECRETS, "run-2:classify")

    assert result["output"] == {"label": "bug"}
    first, second = result["calls"]
    assert (first["valid"], first["status"], first["repair"]) == (False, "invalid", 0)
    assert first["raw_reply"] == "Sure! It is a bug."
    assert first["errors"][0].startswith("the reply is not valid JSON")
    assert (second["valid"], second["status"], second["repair"]) == (True, "ok", 1)
    assert result["usage"]["tokens"] == 30 and result["usage"]["cost"] is None
    repair_request = server.requests("main")[1]
    # The conversation goes on: the prompt, the bad reply, then the validator's errors.
    assert repair_request.messages[:3] == server.requests("main")[0].messages + [
        {"role": "assistant", "content": "Sure! It is a bug."}
    ]
    repair_turn = repair_request.messages[3]
    assert repair_turn["role"] == "user"
    assert first["errors"][0] in repair_turn["content"]
    # A different request from the first: a deduplicating endpoint must not replay the first.
    keys = [r.headers["idempotency-key"] for r in server.requests("main")]
    assert keys[0] == "run-2:classify" and keys[1] != keys[0]
    assert keys[1].startswith("run-2:classify")


def test_a_schema_violation_is_repaired_and_its_errors_name_the_field(server: ModelServer) -> None:
    server.script(
        "main",
        [Reply.json({"label": "urgent", "extra": 1}), Reply.json({"label": "bug"})],
    )

    result = run_ai_task(task_input(server), SECRETS, "k")

    assert result["output"] == {"label": "bug"}
    errors = result["calls"][0]["errors"]
    assert any(e.startswith("$.label: 'urgent' is not one of") for e in errors), errors
    assert any("extra" in e for e in errors), errors
    repair_turn = server.requests("main")[1].messages[-1]["content"]
    assert "$.label: 'urgent' is not one of" in repair_turn


def test_repairs_exhausted_fail_not_retryable_with_the_last_reply(server: ModelServer) -> None:
    server.script(
        "main",
        [Reply.text("nope"), Reply.json({"label": 3}), Reply.json({"label": "x"})],
    )

    with pytest.raises(AiFailure) as raised:
        run_ai_task(task_input(server, max_repairs=2), SECRETS, "k")

    failure = raised.value
    assert (failure.error_type, failure.retryable) == ("AiOutputInvalid", False)
    assert failure.details["last_reply"] == json.dumps({"label": "x"})
    assert failure.details["errors"] == ["$.label: 'x' is not one of ['bug', 'billing']"]
    assert [c["repair"] for c in failure.details["calls"]] == [0, 1, 2]
    assert [c["valid"] for c in failure.details["calls"]] == [False, False, False]
    assert failure.details["usage"] == {"tokens": 45, "cost": None}
    assert len(server.requests("main")) == 3  # max_repairs 2: three calls, no more


def test_a_fallback_model_gets_the_same_prompt_and_its_own_repairs(server: ModelServer) -> None:
    server.script("main", [Reply.text("no"), Reply.text("still no")])
    server.script("backup", [Reply.text("{bad"), Reply.json({"label": "billing"})])
    given = task_input(
        server, max_repairs=1, models=[connection(server), connection(server, "backup")]
    )

    result = run_ai_task(given, SECRETS, "k")

    assert result["output"] == {"label": "billing"}
    assert (result["source"], result["connection"]) == ("fallback_model", "backup")
    assert [(c["connection"], c["repair"], c["valid"]) for c in result["calls"]] == [
        ("main", 0, False),
        ("main", 1, False),
        ("backup", 0, False),
        ("backup", 1, True),
    ]
    # The fallback starts from the prompt, not from the first model's conversation.
    assert server.requests("backup")[0].messages == server.requests("main")[0].messages


def test_the_default_is_the_output_when_every_model_fails(server: ModelServer) -> None:
    server.script("main", [Reply.text("?")])
    server.script("backup", [Reply.text("??")])
    given = task_input(
        server,
        max_repairs=0,
        models=[connection(server), connection(server, "backup")],
        default_output={"label": "bug"},
    )

    result = run_ai_task(given, SECRETS, "k")

    assert result["output"] == {"label": "bug"}
    assert (result["source"], result["connection"]) == ("default", "")
    assert [c["raw_reply"] for c in result["calls"]] == ["?", "??"]


def test_a_fenced_json_reply_is_read_as_json(server: ModelServer) -> None:
    server.script("main", [Reply.text('```json\n{"label": "bug"}\n```')])

    result = run_ai_task(task_input(server), SECRETS, "k")

    assert result["output"] == {"label": "bug"}


def test_redact_prompt_keeps_the_hash_only(server: ModelServer) -> None:
    server.script("main", [Reply.text("x"), Reply.json({"label": "bug"})])

    result = run_ai_task(task_input(server, redact_prompt=True), SECRETS, "k")

    user = "Ticket from ada: CHARGED TWICE"
    digest = hashlib.sha256((SYSTEM + user).encode()).hexdigest()
    assert [c["prompt"] for c in result["calls"]] == [None, None]
    assert [c["prompt_sha256"] for c in result["calls"]] == [digest, digest]
    assert "CHARGED" not in json.dumps(result)


def test_without_a_system_prompt_or_a_key_only_the_user_message_goes_without_authorization(
    server: ModelServer,
) -> None:
    server.script("main", [Reply.json({"label": "bug"})])
    given = task_input(server, system_prompt="", models=[connection(server, api_key_secret="")])

    run_ai_task(given, Secrets({}), "k")

    (request,) = server.requests("main")
    assert [m["role"] for m in request.messages] == ["user"]
    assert "authorization" not in request.headers
