"""An event wait whose timeout has no `timeout_next` is dead-lettered as Timeout. Skipping it
with the payload that never came moves the run on; retrying it must wait for the event
again, not hand a worker a task that no step type implements.

The engine's rules, the same on both stores: PostgreSQL only, to keep the folder quick.
"""

from __future__ import annotations

import grpc
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_triage.triage_support import POSTGRES_ONLY, dead_letters
from tests.support.processes import ControlPlane
from tests.support.runs import (
    events_of,
    get_run,
    history,
    json_payload,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.waits import send_event

EVENT = "payment-received"


def impatient_wait(name: str) -> definition_pb2.WorkflowDefinition:
    """One wait for EVENT keyed by input.order that gives up after a second."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "payment",
                    "wait_event": {
                        "event_name": EVENT,
                        "correlation_key": "input.order",
                        "timeout_seconds": 1,
                        # Events that arrive while no wait is open are kept this long.
                        "retention_seconds": 3600,
                    },
                }
            ],
        }
    )


@POSTGRES_ONLY
def test_a_timed_out_wait_is_a_dead_letter_that_skip_moves_on(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, impatient_wait("impatient"))
    run_id = start_run(stub, "impatient", {"order": "A-1"})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    [dead] = dead_letters(stub)
    assert (dead.run_id, dead.node_id, dead.step_type, dead.error_type) == (
        run_id,
        "payment",
        "",
        "Timeout",
    )

    paid = {"order": "A-1", "amount": 10, "by": "bank transfer"}
    stub.SkipStep(
        ws.SkipStepRequest(run_id=run_id, node_id="payment", output=json_payload(paid)),
        timeout=30,
    )
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == paid
    assert dead_letters(stub) == []


@POSTGRES_ONLY
def test_retrying_a_timed_out_wait_waits_for_the_event_again(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, impatient_wait("impatient-retry"))
    run_id = start_run(stub, "impatient-retry", {"order": "B-1"})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    # The payment arrives late, while nobody waits: it is kept, not delivered.
    late = send_event(stub, EVENT, "B-1", {"order": "B-1"})
    assert (list(late.delivered_to), late.stored) == ([], True)

    stub.RetryStep(ws.RetryStepRequest(run_id=run_id, node_id="payment"), timeout=30)

    # Retried, the node waits again (a new wait, its own key) and takes the kept event; with
    # no event it would time out again after its second. A timing-free check either way.
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"order": "B-1"}
    events = history(stub, run_id)
    [retried] = events_of(events, "STEP_RETRIED", "payment")
    assert retried.data["error"]["type"] == "Timeout"
    assert len(events_of(events, "EVENT_WAIT_STARTED", "payment")) == 2
    assert dead_letters(stub) == []


@POSTGRES_ONLY
def test_a_wait_has_no_input_to_edit(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, impatient_wait("impatient-edit"))
    run_id = start_run(stub, "impatient-edit", {"order": "C-1"})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    before = len(history(stub, run_id))

    try:
        stub.RetryStep(
            ws.RetryStepRequest(run_id=run_id, node_id="payment", input=json_payload({})),
            timeout=30,
        )
    except grpc.RpcError as refused:
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no input to edit" in (refused.details() or "")
    else:
        raise AssertionError("editing the input of a wait was accepted")
    assert status_name(get_run(stub, run_id).status) == "NEEDS_ATTENTION"
    assert len(history(stub, run_id)) == before
