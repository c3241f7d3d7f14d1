"""`surefoot eval --recorded`: the replies accepted in real runs (real control plane, real
connector worker, scripted model) re-scored against another version, writing nothing to
those runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.model_server import ModelRequest, ModelServer, Reply
from tests.e2e_ai.conftest import MODEL_KEY, MODEL_KEY_SECRET, StartAiWorker
from tests.evaluation.eval_support import (
    CALL_TIMEOUT,
    cli,
    listed,
    row_counts,
    support,
    write_definitions,
)
from tests.support.processes import ControlPlane
from tests.support.runs import history, json_payload, wait_for_status

ON_POSTGRES = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
TICKETS = {"refund please": "billing", "site is down": "technical", "charged twice": "billing"}


@ON_POSTGRES
def test_recorded_replies_are_rescored_and_the_runs_are_left_as_they_were(
    control_plane: ControlPlane,
    model_server: ModelServer,
    ai_worker: StartAiWorker,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = model_server.base_url
    definitions = [
        support("1", "m-one", url, secret=MODEL_KEY_SECRET),
        support("2", "m-two", url, secret=MODEL_KEY_SECRET),
    ]
    cli(
        capsys, control_plane, "definitions", "apply", str(write_definitions(tmp_path, definitions))
    )
    ai_worker()
    model_server.script("m-one", [Reply.json({"category": c}) for c in TICKETS.values()])
    stub = control_plane.stub
    run_ids = {}
    for ticket in TICKETS:  # one at a time: each run's reply is the next scripted one
        request = ws.StartRunRequest(
            workflow_name="support", workflow_version="1", input=json_payload({"ticket": ticket})
        )
        run_id = stub.StartRun(request, timeout=CALL_TIMEOUT).run_id
        wait_for_status(stub, run_id, "COMPLETED")
        run_ids[ticket] = run_id
    histories = {run_id: history(stub, run_id) for run_id in run_ids.values()}
    counts = row_counts(database_url)

    # support@2 agrees on two tickets and answers "other" for the outage.
    replies = {"refund please": "billing", "site is down": "other", "charged twice": "billing"}

    def answer(request: ModelRequest) -> Reply:
        text = request.messages[-1]["content"]
        (ticket,) = [t for t in replies if t in text]
        return Reply.json({"category": replies[ticket]})

    model_server.responder = answer
    environment_key = {f"SUREFOOT_SECRET_{MODEL_KEY_SECRET.upper()}": MODEL_KEY}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment_key.items():
            patch.setenv(name, value)
        code, out, err = cli(
            capsys, control_plane, "eval", "--recorded", "support@2", "--since", "1h", "-o", "json"
        )
        strict, strict_out, _ = cli(
            capsys, control_plane, "eval", "--recorded", "support@2", "--threshold", "0.9"
        )

    assert code == 0, out + err
    evaluation = json.loads(out)["evaluation"]
    assert (evaluation["kind"], evaluation["workflow_version"]) == ("recorded", "2")
    assert evaluation["cases"] == 3 and evaluation["passed_cases"] == 2
    assert evaluation["score"] == pytest.approx((1 + 1 + 0.5) / 3)
    cases = {c["name"]: c for c in evaluation["case_results"]}
    assert set(cases) == {f"{run_id}:classify" for run_id in run_ids.values()}
    outage = cases[f"{run_ids['site is down']}:classify"]
    assert outage["passed"] is False
    assert outage["failures"] == ['differs from the recorded output {"category": "technical"}']
    assert json.loads(outage["output_json"]) == {"category": "other"}
    # The recorded inputs went to support@2's model: every ticket, once per evaluation.
    prompts = [r.messages[-1]["content"] for r in model_server.requests("m-two")]
    assert sorted(prompts) == sorted(f"Classify this ticket: {t}" for t in TICKETS for _ in "ab")
    assert strict == 4, strict_out
    assert MODEL_KEY not in out + err + strict_out

    # Nothing was written to the runs: the same histories, event for event.
    assert {run_id: history(stub, run_id) for run_id in run_ids.values()} == histories
    after = row_counts(database_url)
    assert after["history"] == counts["history"]
    assert [e.kind for e in listed(control_plane)] == ["recorded", "recorded"]
