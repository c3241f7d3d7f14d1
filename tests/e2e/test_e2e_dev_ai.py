"""The tour's AI example: `surefoot dev` classifies support tickets through its local scripted
model and routes them by class; a reply cut short is repaired; a ticket the model cannot
classify waits for a person, whose output (checked against the schema) routes the run; the
example's eval set passes through the same model; and a restart on the same data directory
keeps the model where the registered version points."""

from __future__ import annotations

import getpass
import json
import re
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest
from surefoot.v1 import approval_pb2, workflow_service_pb2_grpc

from tests.e2e.test_e2e_dev_mode import start_dev
from tests.support.processes import ProcessRegistry, free_port, run_cli
from tests.support.runs import (
    Event,
    events_of,
    history,
    json_payload,
    payload_value,
    wait_for_status,
)

MODEL_LINE = re.compile(r"model:\s+(http://127\.0\.0\.1:\d+/v1)")
BILLING = {"subject": "Charged twice", "body": "My invoice shows the charge twice."}
GARBLED = {"subject": "App crashes", "body": "garbled: it crashes on start"}
GIBBERISH = {"subject": "Hello", "body": "gibberish"}
REVIEWED = {"category": "account", "urgency": "low", "summary": "a greeting, no request"}


def ai_of(events: list[Event], node_id: str = "classify") -> list[dict[str, Any]]:
    """data["ai"] of the node's events, in order."""
    return [e.data["ai"] for e in events if e.node_id == node_id and "ai" in (e.data or {})]


def start_ticket(port: int, ticket: dict[str, str]) -> str:
    started = run_cli(
        "runs", "start", "support", "--input", json.dumps(ticket), "--address", f"127.0.0.1:{port}"
    )
    assert started.returncode == 0, started
    return started.stdout.strip()


def queue_of(stub: workflow_service_pb2_grpc.WorkflowServiceStub, run_id: str) -> Any:
    run = wait_for_status(stub, run_id, "COMPLETED")
    return payload_value(run.output)["queue"]


def test_dev_mode_classifies_repairs_and_reviews_support_tickets(
    processes: ProcessRegistry, tmp_path: Path
) -> None:
    data_dir, port = tmp_path / "dev-data", free_port()
    dev = start_dev(processes, data_dir, port)
    banner = dev.stdout()
    assert "support@1 (registered, with its eval set)" in banner
    found = MODEL_LINE.search(banner)
    assert found, banner
    model_url = found.group(1)
    assert "runs start support" in banner and "gibberish" in banner

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
    billing, garbled, gibberish = (start_ticket(port, t) for t in (BILLING, GARBLED, GIBBERISH))

    # Classified by keywords at the first call, and routed on the class.
    assert queue_of(stub, billing) == "billing"
    events = history(stub, billing)
    [result] = ai_of(events)
    assert result["source"] == "model" and result["connection"] == "triage"
    assert result["output"]["category"] == "billing"
    [only_call] = result["calls"]
    assert only_call["valid"] and only_call["repair"] == 0
    assert (
        only_call["prompt"]["user"] == "Subject: Charged twice\nMy invoice shows the charge twice."
    )
    assert result["usage"]["tokens"] == 84 and result["usage"]["cost"] > 0
    assert events_of(events, "BRANCH_TAKEN", "route")[0].data["next"] == "billing"

    # The first reply is cut short: the repair turn (with the validator's errors) fixes it.
    assert queue_of(stub, garbled) == "engineering"
    [repaired] = ai_of(history(stub, garbled))
    first, second = repaired["calls"]
    assert (first["repair"], first["valid"], first["status"]) == (0, False, "invalid")
    assert first["raw_reply"].startswith('{"category": "technical"') and first["errors"]
    assert (second["repair"], second["valid"]) == (1, True)
    assert repaired["output"]["category"] == "technical"

    # No valid reply at all: a human review waits, showing the ticket.
    wait_for_status(stub, gibberish, "WAITING")
    approval_id = f"{gibberish}:classify"
    shown = run_cli("approvals", "show", approval_id, "--address", f"127.0.0.1:{port}")
    assert shown.returncode == 0 and "Classify this ticket" in shown.stdout, shown
    before = len(history(stub, gibberish))

    def decide(output: dict[str, Any]) -> approval_pb2.DecideApprovalResponse:
        request = approval_pb2.DecideApprovalRequest(
            namespace="default", approval_id=approval_id, approve=True, output=json_payload(output)
        )
        response: approval_pb2.DecideApprovalResponse = stub.DecideApproval(request, timeout=10)
        return response

    # An output the schema refuses is refused, and nothing is written.
    with pytest.raises(grpc.RpcError) as refused:
        decide({"category": "sales", "urgency": "low", "summary": "x"})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert len(history(stub, gibberish)) == before

    decide(REVIEWED)
    assert queue_of(stub, gibberish) == "frontline"
    reviewed = [ai for ai in ai_of(history(stub, gibberish)) if ai.get("source") == "human_review"]
    assert reviewed == [
        {"source": "human_review", "decided_by": getpass.getuser(), "output": REVIEWED}
    ]
    channel.close()

    # The tour's last line: its eval set through the dev model, recorded, exit 0.
    evaluated = run_cli("eval", "support@1", "--address", f"127.0.0.1:{port}")
    assert evaluated.returncode == 0, evaluated
    assert "support@1: score 1.000 (threshold 0.75), 4/4 cases passed: passed" in evaluated.stdout
    listed = run_cli("eval", "list", "support", "--address", f"127.0.0.1:{port}")
    assert listed.returncode == 0 and " 4/4 " in listed.stdout, listed

    # A restart listens where the registered version points: unchanged, and it still answers.
    assert dev.stop(signal.SIGINT) == 0, dev.logs()
    again = start_dev(processes, data_dir, port)
    assert "support@1 (unchanged, with its eval set)" in again.stdout()
    assert f"model:      {model_url}" in again.stdout()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
    assert queue_of(stub, start_ticket(port, BILLING)) == "billing"
    channel.close()
    assert again.stop(signal.SIGINT) == 0, again.logs()
