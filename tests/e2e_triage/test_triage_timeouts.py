"""A task's `timeout_seconds` bounds every attempt (README: "per attempt"), so the attempt an
operator's retry starts must be given the same deadline as the first one.

The engine's rule, the same on both stores: PostgreSQL only, to keep the folder quick.
"""

from __future__ import annotations

from pathlib import Path

from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_triage.triage_support import POSTGRES_ONLY, dead_letters
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import json_payload, payload_value, register, start_run, wait_for_status

DEADLINE_STEPS = Path(__file__).with_name("deadline_steps.py")


@POSTGRES_ONLY
def test_an_operator_retry_keeps_the_nodes_timeout(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(
        stub,
        definition_from_dict(
            {
                "name": "bounded",
                "version": "1",
                "nodes": [
                    {
                        "id": "call",
                        "task": {
                            "step_type": "e2e-deadline",
                            "input": "input",
                            "idempotency": "key",
                            "timeout_seconds": 30,
                        },
                    }
                ],
            }
        ),
    )
    worker(DEADLINE_STEPS)
    run_id = start_run(stub, "bounded", {"decline": True})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    [dead] = dead_letters(stub)
    # The first attempt had its deadline: the step's error says so.
    assert dead.error_message == "declined; deadline given: True"

    stub.RetryStep(
        ws.RetryStepRequest(run_id=run_id, node_id="call", input=json_payload({})), timeout=30
    )
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"attempt": 2, "deadline_given": True}
