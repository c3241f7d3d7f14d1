"""Dead letters group by workflow, step type and error type, largest first; a run that
needs attention and is cancelled (or abandoned) is no dead letter any more."""

from __future__ import annotations

import grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_triage.triage_support import (
    DECLINED,
    FLAKY,
    dead_letters,
    groups,
    one_attempt_b,
    wait_all,
)
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, history, register, start_run, status_name
from tests.support.waits import refusal


def test_two_error_types_are_two_groups_and_cancelling_removes_a_dead_letter(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, one_attempt_b("grouped"))
    register(stub, one_attempt_b("elsewhere"))
    worker()
    declined = [start_run(stub, "grouped", DECLINED) for _ in range(3)]
    flaky = [start_run(stub, "grouped", FLAKY) for _ in range(2)]
    other = start_run(stub, "elsewhere", DECLINED)
    wait_all(stub, [*declined, *flaky, other], "NEEDS_ATTENTION")

    assert groups(stub, workflow_name="grouped") == [
        ("grouped", "e2e-work-sync", "CardDeclined", 3),
        ("grouped", "e2e-work-sync", "FlakyDependency", 2),
    ]
    # Across workflows a group is per workflow; filters narrow the groups as the list.
    assert groups(stub) == [
        ("grouped", "e2e-work-sync", "CardDeclined", 3),
        ("grouped", "e2e-work-sync", "FlakyDependency", 2),
        ("elsewhere", "e2e-work-sync", "CardDeclined", 1),
    ]
    assert groups(stub, error_type="CardDeclined") == [
        ("grouped", "e2e-work-sync", "CardDeclined", 3),
        ("elsewhere", "e2e-work-sync", "CardDeclined", 1),
    ]
    response = stub.ListDeadLetters(
        ws.ListDeadLettersRequest(
            filter=ws.DeadLetterFilter(workflow_name="grouped", error_type="FlakyDependency"),
            grouped=True,
        ),
        timeout=30,
    )
    [group] = response.groups
    assert group.sample_run_id in flaky
    assert group.sample_message == "b attempt 1: the dependency is down"
    assert group.oldest.ToNanoseconds() <= group.newest.ToNanoseconds()
    assert {d.run_id for d in dead_letters(stub, error_type="FlakyDependency")} == set(flaky)

    # Cancel one declined run and abandon another: both leave the dead letters.
    cancelled = stub.CancelRun(
        ws.CancelRunRequest(run_id=declined[0], reason="duplicate order"), timeout=30
    ).run
    assert status_name(cancelled.status) == "CANCELLED"
    abandoned = stub.CancelRun(
        ws.CancelRunRequest(run_id=declined[1], reason="customer left", compensate=True),
        timeout=30,
    ).run
    # a has no compensation: nothing to undo, so the abandon ends at once.
    assert status_name(abandoned.status) == "COMPENSATED"
    assert {d.run_id for d in dead_letters(stub, workflow_name="grouped")} == {
        declined[2],
        *flaky,
    }
    assert groups(stub, workflow_name="grouped") == [
        ("grouped", "e2e-work-sync", "FlakyDependency", 2),
        ("grouped", "e2e-work-sync", "CardDeclined", 1),
    ]
    [cancel_event] = events_of(history(stub, declined[0]), "RUN_CANCELLED")
    assert cancel_event.data["reason"] == "duplicate order"
    # Nothing to retry on a run that ended.
    error = refusal(
        lambda: stub.RetryStep(ws.RetryStepRequest(run_id=declined[0], node_id="b"), timeout=30)
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
