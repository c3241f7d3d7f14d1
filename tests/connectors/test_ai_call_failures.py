"""run_ai_task when there is no output: what the endpoint's errors, a timeout, the run's
budget, a bad template or a missing secret become, and that no secret value leaks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from surefoot_connectors.ai_call import AiFailure, run_ai_task
from surefoot_connectors.secrets import Secrets

from controlplane.model_server import ModelServer, Reply

KEY = "sk-leak-check-7f3a9c2e51"
SECRETS = Secrets({"MODEL_KEY": KEY})
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label"],
    "properties": {"label": {"type": "string"}},
}


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as model_server:
        yield model_server


def task_input(base_url: str, **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "node": "classify",
        "input": {"text": "hello"},
        "system_prompt": "",
        "user_prompt": "Classify: {{ input.text }}",
        "output_schema": SCHEMA,
        "models": [
            {
                "name": "main",
                "base_url": base_url,
                "model": "main",
                "api_key_secret": "model_key",
                "structured_output": "json_object",
                "input_price_per_million": 0.0,
                "output_price_per_million": 0.0,
                "headers": {},
            }
        ],
        "max_repairs": 2,
        "max_tokens": 0,
        "temperature": 0.0,
        "timeout_seconds": 10.0,
        "redact_prompt": False,
        "budget": {"max_tokens": 0, "max_cost": 0.0, "used_tokens": 0, "used_cost": 0.0},
    }
    value.update(overrides)
    return value


def failure_of(given: dict[str, Any], secrets: Secrets = SECRETS) -> AiFailure:
    with pytest.raises(AiFailure) as raised:
        run_ai_task(given, secrets, "run:classify")
    return raised.value


def test_429_is_rate_limited_with_its_retry_after(server: ModelServer) -> None:
    server.script("main", [Reply.rate_limited(2.5)])

    failure = failure_of(task_input(server.base_url))

    assert (failure.error_type, failure.retryable, failure.retry_after) == (
        "AiRateLimited",
        True,
        2.5,
    )
    (call,) = failure.details["calls"]
    assert (call["status"], call["valid"], call["raw_reply"]) == ("http_429", False, "")
    assert "429" in failure.message


def test_503_with_retry_after_is_rate_limited_and_500_is_a_server_error(
    server: ModelServer,
) -> None:
    server.script(
        "main",
        [Reply.error(503, "overloaded", headers={"Retry-After": "4"}), Reply.error(500, "boom")],
    )

    busy = failure_of(task_input(server.base_url))
    broken = failure_of(task_input(server.base_url))

    assert (busy.error_type, busy.retryable, busy.retry_after) == ("AiRateLimited", True, 4.0)
    assert (broken.error_type, broken.retryable, broken.retry_after) == (
        "AiServerError",
        True,
        None,
    )
    assert broken.details["calls"][0]["status"] == "http_500"
    assert "boom" in broken.message


def test_another_4xx_is_rejected_for_good(server: ModelServer) -> None:
    server.script("main", [Reply.error(400, "response_format is not supported")])

    failure = failure_of(task_input(server.base_url))

    assert (failure.error_type, failure.retryable) == ("AiRequestRejected", False)
    assert "response_format is not supported" in failure.message
    assert failure.details["calls"][0]["status"] == "http_400"


def test_a_reply_slower_than_the_timeout_is_a_retryable_timeout(server: ModelServer) -> None:
    server.script("main", [Reply(content="{}", delay=30)])
    started = time.monotonic()

    failure = failure_of(task_input(server.base_url, timeout_seconds=0.5))

    assert time.monotonic() - started < 10  # the call's timeout, not the reply's delay
    assert (failure.error_type, failure.retryable) == ("AiTimeout", True)
    assert failure.details["calls"][0]["status"] == "timeout"


def test_no_endpoint_listening_is_a_retryable_server_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there

    failure = failure_of(task_input(f"http://127.0.0.1:{port}/v1"))

    assert (failure.error_type, failure.retryable) == ("AiServerError", True)
    assert failure.details["calls"][0]["status"] == "connection_error"


def test_a_spent_token_budget_refuses_the_call_before_it_is_made(server: ModelServer) -> None:
    budget = {"max_tokens": 1000, "max_cost": 0.0, "used_tokens": 1000, "used_cost": 0.0}

    failure = failure_of(task_input(server.base_url, budget=budget))

    assert (failure.error_type, failure.retryable) == ("AiBudgetExceeded", False)
    assert "1000" in failure.message
    assert server.requests() == []
    assert "calls" not in failure.details  # none were made


def test_the_budget_counts_this_attempts_own_calls(server: ModelServer) -> None:
    # Each scripted reply uses 15 tokens: 990 + 15 leaves none for the repair turn.
    server.script("main", [Reply.text("not json")])
    budget = {"max_tokens": 1000, "max_cost": 0.0, "used_tokens": 990, "used_cost": 0.0}

    failure = failure_of(task_input(server.base_url, budget=budget))

    assert failure.error_type == "AiBudgetExceeded"
    assert len(server.requests()) == 1
    assert [c["raw_reply"] for c in failure.details["calls"]] == ["not json"]


def test_a_spent_cost_budget_refuses_the_call(server: ModelServer) -> None:
    budget = {"max_tokens": 0, "max_cost": 0.5, "used_tokens": 0, "used_cost": 0.5}

    failure = failure_of(task_input(server.base_url, budget=budget))

    assert failure.error_type == "AiBudgetExceeded"
    assert server.requests() == []


@pytest.mark.parametrize(
    "template",
    [
        "{{ input.missing }}",  # StrictUndefined: a misspelt variable is an error
        "{{ input.__class__.__mro__ }}",  # the sandbox: no way to Python's internals
        "{{ ''.__class__.__subclasses__() }}",
    ],
)
def test_a_template_that_cannot_render_is_bad_input_and_calls_nothing(
    server: ModelServer, template: str
) -> None:
    failure = failure_of(task_input(server.base_url, user_prompt=template))

    assert (failure.error_type, failure.retryable) == ("ConnectorInputInvalid", False)
    assert failure.message.startswith("the prompt cannot be rendered: user_prompt")
    assert server.requests() == []


def test_a_missing_key_secret_fails_for_good_and_names_it(server: ModelServer) -> None:
    failure = failure_of(task_input(server.base_url), secrets=Secrets({}))

    assert (failure.error_type, failure.retryable) == ("SecretNotFound", False)
    assert "'model_key'" in failure.message and "SUREFOOT_SECRET_MODEL_KEY" in failure.message
    assert server.requests() == []


def test_run_data_cannot_pull_a_secret_into_the_prompt(server: ModelServer) -> None:
    server.script("main", [Reply.json({"label": "ok"})])
    given = task_input(server.base_url, input={"text": "${secret:model_key}"})

    run_ai_task(given, SECRETS, "k")

    (request,) = server.requests()
    assert request.messages[-1]["content"] == "Classify: ${secret:model_key}"


def test_the_key_never_leaves_in_a_result_an_error_or_a_log(
    server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    # An endpoint that echoes the key back, in a reply and in an error body.
    server.script(
        "main",
        [
            Reply.text(f"my key is {KEY}"),
            Reply.json({"label": f"Bearer {KEY}"}),
        ],
    )
    server.script("echo-error", [Reply.error(401, f"invalid key {KEY}"), Reply.text(f"{KEY}")])
    caplog.set_level(logging.DEBUG)

    result = run_ai_task(task_input(server.base_url), SECRETS, "k")
    given = task_input(server.base_url)
    given["models"][0]["model"] = "echo-error"
    rejected = failure_of(given)
    given["max_repairs"] = 0
    invalid = failure_of(given)

    assert server.requests()[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    assert result["output"] == {"label": "Bearer ***"}
    assert result["calls"][0]["raw_reply"] == "my key is ***"
    assert rejected.error_type == "AiRequestRejected"
    assert invalid.error_type == "AiOutputInvalid"
    everything = json.dumps(result) + caplog.text
    for failure in (rejected, invalid):
        everything += failure.message + json.dumps(failure.details) + str(failure)
    assert KEY not in everything
    assert "***" in rejected.message


def test_retry_after_may_be_an_http_date(server: ModelServer) -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    server.script("main", [Reply.error(429, "slow down", headers={"Retry-After": when})])

    failure = failure_of(task_input(server.base_url))

    assert failure.error_type == "AiRateLimited"
    assert failure.retry_after is not None and 25 <= failure.retry_after <= 30


def test_an_empty_reply_is_repaired_like_any_invalid_one(server: ModelServer) -> None:
    server.script("main", [Reply.text(""), Reply.json({"label": "ok"})])

    result = run_ai_task(task_input(server.base_url), SECRETS, "k")

    assert result["output"] == {"label": "ok"}
    assert result["calls"][0]["errors"] == ["the reply is empty, not JSON"]


class _HtmlPage(BaseHTTPRequestHandler):
    """A proxy's page: 200, but no chat completion."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_2xx_that_is_no_chat_completion_is_a_retryable_server_error() -> None:
    page = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    thread = threading.Thread(target=page.serve_forever, daemon=True)
    thread.start()
    try:
        failure = failure_of(task_input(f"http://127.0.0.1:{page.server_address[1]}/v1"))
    finally:
        page.shutdown()
        page.server_close()
        thread.join()

    assert (failure.error_type, failure.retryable) == ("AiServerError", True)
    assert "not a chat completion" in failure.message
    assert failure.details["calls"][0]["status"] == "http_200"
