"""Who sent an event, and how far a running step got, are kept and shown.

An event's EVENT_RECEIVED names the authenticated caller that sent it (law 7), whether the
run waited already or reached its wait later. A step's heartbeat details are kept with its
attempt and shown by GetRun while the attempt runs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import common_pb2, definition_pb2, run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, BOB, AuthControlPlane, bearer, write_auth_file
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    ControlPlane,
    ProcessRegistry,
    StartWorker,
    process_environment,
    surefoot_command,
)
from tests.support.runs import events_of, get_run, history, register, start_run, wait_for_status

EVENT = "parcel-delivered"


@pytest.fixture
def auth_control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def await_delivery() -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": "await-delivery",
            "version": "1",
            "nodes": [
                {
                    "id": "delivered",
                    "wait_event": {"event_name": EVENT, "correlation_key": "input.parcel"},
                }
            ],
        }
    )


def sent_as(server: AuthControlPlane, token: str, parcel: str) -> apb.SendEventResponse:
    request = apb.SendEventRequest(
        event_name=EVENT,
        correlation_key=parcel,
        payload=common_pb2.Payload(encoding="json/plain", data=json.dumps({"p": parcel}).encode()),
    )
    return server.stub.SendEvent(request, metadata=bearer(token), timeout=30)


def test_event_received_names_the_caller_that_sent_it(
    auth_control_plane: AuthControlPlane,
) -> None:
    stub = auth_control_plane.stub
    register(stub, await_delivery())
    waiting = start_run(stub, "await-delivery", {"parcel": "P-1"})
    wait_for_status(stub, waiting, "WAITING")

    delivered = sent_as(auth_control_plane, ALICE, "P-1")
    kept = sent_as(auth_control_plane, BOB, "P-2")
    later = start_run(stub, "await-delivery", {"parcel": "P-2"})

    assert list(delivered.delivered_to) == [waiting] and kept.stored
    for run_id, principal in ((waiting, "alice"), (later, "bob")):
        wait_for_status(stub, run_id, "COMPLETED")
        (received,) = events_of(history(stub, run_id), "EVENT_RECEIVED", "delivered")
        assert received.principal == principal, received


PROGRESS_STEPS = """
import time
from pathlib import Path

from surefoot_worker import step


@step("report-progress", version="1", idempotency="key")
def report_progress(ctx, input):
    ctx.heartbeat({"done": 1, "of": 3})
    gate = Path(input["gate"])
    while not gate.exists():
        time.sleep(0.05)
    ctx.heartbeat({"done": 3, "of": 3})
    return {"ok": True}
"""


def test_a_running_attempt_shows_its_latest_heartbeat_details(
    control_plane: ControlPlane, worker: StartWorker, tmp_path: Path
) -> None:
    module = tmp_path / "progress_steps.py"
    module.write_text(PROGRESS_STEPS)
    gate = tmp_path / "gate"
    register(
        control_plane.stub,
        definition_from_dict(
            {
                "name": "long-step",
                "version": "1",
                "nodes": [
                    {
                        "id": "work",
                        "task": {
                            "step_type": "report-progress",
                            "step_version": "1",
                            "input": "input",
                            "idempotency": "key",
                        },
                    }
                ],
            }
        ),
    )
    worker(module=module)
    run_id = start_run(control_plane.stub, "long-step", {"gate": str(gate)})

    def details_shown() -> run_pb2.Attempt:
        steps = get_run(control_plane.stub, run_id).steps
        assert len(steps) == 1 and len(steps[0].attempts) == 1, steps
        attempt = steps[0].attempts[0]
        assert attempt.outcome == run_pb2.ATTEMPT_OUTCOME_RUNNING, attempt
        assert attempt.details.encoding == "json/plain", attempt
        return attempt

    attempt = assert_eventually(details_shown, message="the attempt shows its progress")
    assert json.loads(attempt.details.data) == {"done": 1, "of": 3}
    shown = subprocess.run(
        surefoot_command("runs", "show", run_id),
        capture_output=True,
        text=True,
        timeout=60,
        env=process_environment(SUREFOOT_ADDRESS=control_plane.address),
    )
    assert shown.returncode == 0, shown.stderr
    assert 'progress: {"done":1,"of":3}' in shown.stdout, shown.stdout

    gate.touch()
    run = wait_for_status(control_plane.stub, run_id, "COMPLETED")
    (step,) = run.steps
    (finished,) = step.attempts
    assert finished.outcome == run_pb2.ATTEMPT_OUTCOME_COMPLETED
    assert finished.started_at.seconds > 0 and finished.ended_at.seconds > 0
