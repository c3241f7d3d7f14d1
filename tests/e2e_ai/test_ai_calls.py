"""Acceptance tests of the AI node's model calls: a real control plane, the real connector
worker process and the scripted OpenAI-compatible server, each test on its own database.

What is checked is what an operator sees: the run's status, its history (every call with its
reply and validation outcome, the retries' times) and what the endpoint received.
"""

from __future__ import annotations

import json

import pytest

from controlplane.model_server import ModelServer, Reply
from tests.e2e_ai.conftest import (
    MODEL_KEY,
    TICKET,
    StartAiWorker,
    ai_definition,
    connection,
)
from tests.support.processes import ControlPlane, run_cli
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    history,
    register,
    start_run,
    wait_for_status,
)

# The engine is the same on both stores; these tests' subject is the call, so PostgreSQL only.
ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
# History times are stored to the microsecond; allow for that rounding.
CLOCK_TOLERANCE = 0.005
BILLING = {"label": "billing", "confidence": 0.9}


@ON_POSTGRES
def test_a_reply_repaired_on_the_second_try_completes_the_run_with_both_calls_in_history(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script("main", [Reply.text("billing, I would say"), Reply.json(BILLING)])
    stub = control_plane.stub
    register(stub, ai_definition("ai-repair", [connection(model_server)]))
    ai_worker()

    run_id = start_run(stub, "ai-repair", TICKET)

    run = wait_for_status(stub, run_id, "COMPLETED")
    (step,) = run.steps
    events = history(stub, run_id)
    assert_history_well_formed(events)
    (completed,) = events_of(events, "ATTEMPT_COMPLETED", "classify")
    assert completed.attempt == 1  # the repair is a turn of the same attempt, not a retry
    assert completed.data["output"] == BILLING
    ai = completed.data["ai"]
    assert (ai["source"], ai["connection"], ai["output"]) == ("model", "main", BILLING)
    first, second = ai["calls"]
    assert (first["repair"], first["valid"], first["raw_reply"]) == (
        0,
        False,
        "billing, I would say",
    )
    assert first["errors"][0].startswith("the reply is not valid JSON")
    assert (second["repair"], second["valid"]) == (1, True)
    assert first["prompt"]["user"] == "Ticket from ada: the invoice was charged twice"
    assert ai["usage"]["tokens"] == 30
    # The endpoint got the step's idempotency key, then the repair turn with the errors.
    requests = model_server.requests("main")
    assert requests[0].headers["idempotency-key"] == step.idempotency_key
    assert first["errors"][0] in requests[1].messages[-1]["content"]
    assert not events_of(events, "ATTEMPT_FAILED")


@ON_POSTGRES
def test_a_429_is_retried_no_sooner_than_its_retry_after(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script("main", [Reply.rate_limited(2), Reply.json(BILLING)])
    stub = control_plane.stub
    register(stub, ai_definition("ai-429", [connection(model_server)]))
    ai_worker()

    run_id = start_run(stub, "ai-429", TICKET)

    wait_for_status(stub, run_id, "COMPLETED")
    events = history(stub, run_id)
    (failed,) = events_of(events, "ATTEMPT_FAILED", "classify")
    assert failed.data["error"]["type"] == "AiRateLimited"
    assert failed.data["error"]["retry_after"] == 2.0
    (retry,) = events_of(events, "RETRY_SCHEDULED", "classify")
    assert retry.data["delay_seconds"] >= 2.0, retry.data
    started = {e.attempt: e.time for e in events_of(events, "ATTEMPT_STARTED", "classify")}
    assert started[2] - failed.time >= 2.0 - CLOCK_TOLERANCE, (started, failed.time)
    first, second = model_server.requests("main")
    assert second.time - first.time >= 2.0 - CLOCK_TOLERANCE
    (completed,) = events_of(events, "ATTEMPT_COMPLETED", "classify")
    assert completed.attempt == 2 and completed.data["output"] == BILLING


@ON_POSTGRES
def test_a_timed_out_call_is_retried(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script("main", [Reply.json(BILLING, delay=60), Reply.json(BILLING)])
    stub = control_plane.stub
    register(stub, ai_definition("ai-timeout", [connection(model_server)], timeout_seconds=1.0))
    ai_worker()

    run_id = start_run(stub, "ai-timeout", TICKET)

    wait_for_status(stub, run_id, "COMPLETED")
    events = history(stub, run_id)
    (failed,) = events_of(events, "ATTEMPT_FAILED", "classify")
    assert failed.data["error"]["type"] == "AiTimeout"
    assert failed.data["error"]["retryable"] is True
    (completed,) = events_of(events, "ATTEMPT_COMPLETED", "classify")
    assert completed.attempt == 2 and completed.data["output"] == BILLING


@ON_POSTGRES
def test_the_model_key_never_reaches_history_a_log_or_runs_show(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    # An endpoint that echoes the key it was sent: in an error, in a reply, in the output.
    model_server.script(
        "main",
        [
            Reply.error(500, f"upstream refused Bearer {MODEL_KEY}"),
            Reply.text(f"your key is {MODEL_KEY}"),
            Reply.json({"label": "question", "confidence": 0.5, "note": MODEL_KEY}),
            Reply.json({"label": "question", "confidence": 0.5}),
        ],
    )
    schema = {
        "type": "object",
        "required": ["label", "confidence"],
        "properties": {
            "label": {"type": "string"},
            "confidence": {"type": "number"},
            "note": {"type": "string", "maxLength": 3},
        },
    }
    stub = control_plane.stub
    definition = ai_definition(
        "ai-secret",
        [connection(model_server, headers={"X-Org": "${secret:model_key}"})],
        schema=schema,
    )
    register(stub, definition)
    worker = ai_worker()

    run_id = start_run(stub, "ai-secret", TICKET)

    wait_for_status(stub, run_id, "COMPLETED")
    requests = model_server.requests("main")
    assert requests[0].headers["authorization"] == f"Bearer {MODEL_KEY}"  # it was sent
    assert requests[0].headers["x-org"] == MODEL_KEY
    events = history(stub, run_id)
    (completed,) = events_of(events, "ATTEMPT_COMPLETED", "classify")
    replies = [c["raw_reply"] for c in completed.data["ai"]["calls"]]
    assert replies[0] == "your key is ***"
    shown = run_cli("runs", "show", run_id, "--address", control_plane.address)
    assert shown.returncode == 0, shown.stderr
    as_json = run_cli("runs", "show", run_id, "--address", control_plane.address, "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert control_plane.process is not None
    seen = {
        "history": json.dumps([e.data for e in events]),
        "worker log": worker.stdout() + worker.stderr(),
        "control plane log": control_plane.process.stdout() + control_plane.process.stderr(),
        "runs show": shown.stdout + shown.stderr + as_json.stdout + as_json.stderr,
    }
    for where, text in seen.items():
        assert MODEL_KEY not in text, where
    assert "***" in seen["history"]
