"""Acceptance: what becomes of an AI node whose model does not deliver, end to end.

Real processes (control plane, connector worker) against a scripted model endpoint: without
a fallback the step is dead-lettered and the error's details carry the model's last raw
reply; a fallback model's valid reply completes the node, recorded as such; a default output
completes it, recorded as the default; a run whose AI budget is spent fails its next AI
node before any call.
"""

from __future__ import annotations

import json
from typing import Any

from surefoot.v1 import definition_pb2

from controlplane.model_server import ModelServer, Reply
from tests.e2e_ai.conftest import TICKET, StartAiWorker, ai_definition, connection
from tests.support.processes import ControlPlane
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)

BILLING = {"label": "billing", "confidence": 0.9}
QUESTION = {"label": "question", "confidence": 0.0}


def completion(control_plane: ControlPlane, run_id: str) -> dict[str, Any]:
    """The `ai` data of the classify step's completion."""
    [done] = events_of(history(control_plane.stub, run_id), "ATTEMPT_COMPLETED", "classify")
    ai: dict[str, Any] = done.data["ai"]
    assert done.data["output"] == ai["output"]
    return ai


def test_without_a_fallback_the_step_is_dead_lettered_with_the_last_raw_reply(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script(
        "main",
        [
            Reply.text("billing, I think"),
            Reply.json({"label": "money"}),
            Reply.json({"label": "refund", "confidence": 7}),
        ],
    )
    register(control_plane.stub, ai_definition("no-fallback", [connection(model_server)]))
    ai_worker()

    run_id = start_run(control_plane.stub, "no-fallback", TICKET)

    run = wait_for_status(control_plane.stub, run_id, "NEEDS_ATTENTION")
    assert run.last_error.type == "AiOutputInvalid"
    # The error's details end with the facts as one JSON line.
    facts = json.loads(run.last_error.details.splitlines()[-1])
    assert facts["last_reply"] == '{"label": "refund", "confidence": 7}'
    events = history(control_plane.stub, run_id)
    [dead] = events_of(events, "STEP_DEAD_LETTERED", "classify")
    assert dead.data["ai"]["last_reply"] == '{"label": "refund", "confidence": 7}'
    assert [call["repair"] for call in dead.data["ai"]["calls"]] == [0, 1, 2]
    assert len(model_server.requests("main")) == 3


def test_a_fallback_model_completes_the_node_recorded_as_a_fallback(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script("main", [Reply.text("no idea")] * 3)
    model_server.script("spare", [Reply.json(BILLING)])
    definition = ai_definition(
        "spare-model",
        [connection(model_server), connection(model_server, "spare")],
        fallbacks=[definition_pb2.AiFallback(model="spare")],
    )
    register(control_plane.stub, definition)
    ai_worker()

    run_id = start_run(control_plane.stub, "spare-model", TICKET)

    run = wait_for_status(control_plane.stub, run_id, "COMPLETED")
    assert payload_value(run.output) == BILLING
    ai = completion(control_plane, run_id)
    assert (ai["source"], ai["connection"]) == ("fallback_model", "spare")
    assert [call["connection"] for call in ai["calls"]] == ["main"] * 3 + ["spare"]


def test_a_default_output_completes_the_node_recorded_as_the_default(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    model_server.script("main", [Reply.text("no idea")] * 3)
    definition = ai_definition(
        "with-default",
        [connection(model_server)],
        fallbacks=[
            definition_pb2.AiFallback(default_output_json='{"label": "question", "confidence": 0}')
        ],
    )
    register(control_plane.stub, definition)
    ai_worker()

    run_id = start_run(control_plane.stub, "with-default", TICKET)

    run = wait_for_status(control_plane.stub, run_id, "COMPLETED")
    assert payload_value(run.output) == QUESTION
    ai = completion(control_plane, run_id)
    assert (ai["source"], ai["connection"]) == ("default", "")
    assert len(ai["calls"]) == 3


def test_a_run_past_its_ai_budget_fails_the_next_ai_node_before_it_calls(
    control_plane: ControlPlane, model_server: ModelServer, ai_worker: StartAiWorker
) -> None:
    # Each reply reports 10 + 5 tokens: the first node spends all 15 of the run's budget.
    model_server.script("main", [Reply.json(BILLING)])
    second = definition_pb2.Node(
        id="second",
        ai=definition_pb2.AiNode(
            input="steps.classify.output",
            user_prompt="Check this class: {{ input.label }}",
            model="main",
            output_schema_json='{"type": "object"}',
            max_run_tokens=15,
        ),
    )
    definition = ai_definition(
        "budget", [connection(model_server)], then=[second], max_run_tokens=15
    )
    register(control_plane.stub, definition)
    ai_worker()

    run_id = start_run(control_plane.stub, "budget", TICKET)

    run = wait_for_status(control_plane.stub, run_id, "NEEDS_ATTENTION")
    assert run.last_error.type == "AiBudgetExceeded"
    events = history(control_plane.stub, run_id)
    [scheduled] = events_of(events, "STEP_SCHEDULED", "second")
    assert scheduled.data["input"]["budget"]["used_tokens"] == 15
    assert len(model_server.requests("main")) == 1
    assert [e.node_id for e in events_of(events, "STEP_DEAD_LETTERED")] == ["second"]
