"""Dead letters through the API: a run that needs attention is listed and grouped; an
operator retries it with corrected input, or skips it with an output, and the run goes on.
Every decision is history with the principal; a second decision is refused."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    history,
    json_payload,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import three_steps

DECLINE_B = {"trail": [], "b": {"non_retryable": True}}


def dead_letters(stub: object, **filters: str) -> list[ws.DeadLetter]:
    request = ws.ListDeadLettersRequest(filter=ws.DeadLetterFilter(**filters))
    return list(stub.ListDeadLetters(request, timeout=30).dead_letters)  # type: ignore[attr-defined]


def test_retry_with_edited_input_and_skip_move_dead_runs_on(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("triaged"))
    worker()
    to_retry = start_run(stub, "triaged", DECLINE_B)
    to_skip = start_run(stub, "triaged", DECLINE_B)
    for run_id in (to_retry, to_skip):
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    listed = dead_letters(stub, workflow_name="triaged")
    assert {d.run_id for d in listed} == {to_retry, to_skip}
    assert {(d.node_id, d.step_type, d.error_type, d.attempts) for d in listed} == {
        ("b", "e2e-work-sync", "CardDeclined", 1)
    }
    assert "card 4242 declined" in listed[0].error_message
    [group] = stub.ListDeadLetters(ws.ListDeadLettersRequest(grouped=True)).groups
    assert (group.workflow_name, group.step_type, group.error_type, group.count) == (
        "triaged",
        "e2e-work-sync",
        "CardDeclined",
        2,
    )

    retried = stub.RetryStep(
        ws.RetryStepRequest(
            run_id=to_retry,
            node_id="b",
            input=json_payload({"trail": ["a"]}),
            comment="card replaced",
        )
    )
    skipped = stub.SkipStep(
        ws.SkipStepRequest(
            run_id=to_skip,
            node_id="b",
            output=json_payload({"trail": ["a", "b-by-hand"]}),
            comment="charged by phone",
        )
    )
    assert retried.run.id == to_retry and skipped.run.id == to_skip

    done = wait_for_status(stub, to_retry, "COMPLETED")
    assert payload_value(done.output)["trail"] == ["a", "b", "c"]
    done = wait_for_status(stub, to_skip, "COMPLETED")
    assert payload_value(done.output)["trail"] == ["a", "b-by-hand", "c"]
    assert dead_letters(stub) == []
    # b ran twice for the retried run (declined, then with the new input), once for the other.
    assert [e.attempt for e in execution_log.started(to_retry, "b")] == [1, 2]
    assert [e.attempt for e in execution_log.started(to_skip, "b")] == [1]

    [event] = events_of(history(stub, to_retry), "STEP_RETRIED", "b")
    assert event.principal and event.data["comment"] == "card replaced"
    assert event.data["input"] == {"trail": ["a"]} and event.data["input_edited"] is True
    assert event.data["error"]["type"] == "CardDeclined"
    [event] = events_of(history(stub, to_skip), "STEP_SKIPPED", "b")
    assert event.data["output"] == {"trail": ["a", "b-by-hand"]}

    with pytest.raises(grpc.RpcError) as again:
        stub.RetryStep(ws.RetryStepRequest(run_id=to_retry, node_id="b"))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_redrive_retries_every_matching_dead_letter(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    definition = three_steps("incident")
    definition.nodes[1].task.retry.max_attempts = 1
    register(stub, definition)
    worker()
    # b fails on attempt 1 only (the dependency was down) with a policy of one attempt: each
    # run is dead-lettered, and a redrive after the outage completes them all.
    runs = [start_run(stub, "incident", {"trail": [], "b": {"fail_times": 1}}) for _ in range(6)]
    for run_id in runs:
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    with pytest.raises(grpc.RpcError) as everything:
        stub.RedriveDeadLetters(ws.RedriveDeadLettersRequest())
    assert everything.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    first = stub.RedriveDeadLetters(
        ws.RedriveDeadLettersRequest(
            filter=ws.DeadLetterFilter(workflow_name="incident"), limit=4, comment="api back"
        )
    )
    assert (first.retried, first.remaining) == (4, 2)
    rest = stub.RedriveDeadLetters(
        ws.RedriveDeadLettersRequest(filter=ws.DeadLetterFilter(step_type="e2e-work-sync"))
    )
    assert (rest.retried, rest.remaining) == (2, 0)
    for run_id in runs:
        wait_for_status(stub, run_id, "COMPLETED")
