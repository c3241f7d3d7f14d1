"""A compensation that gives up leaves its run half-undone in NEEDS_ATTENTION, listed as a
dead letter. Retrying it, or skipping it with an output, lets the run finish unwinding: the
remaining compensations run and it ends COMPENSATED."""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_triage.triage_support import dead_letters, saga_with_failing_undo, wait_all
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    history,
    json_payload,
    register,
    start_run,
    status_name,
    wait_for_status,
)


def saga_input(undo_b: dict[str, object]) -> dict[str, object]:
    # c declines a card (non-retryable): the run unwinds b, then a; b's undo is shaped here.
    return {"trail": [], "c": {"non_retryable": True}, "undo": {"b": undo_b}}


def test_a_dead_lettered_compensation_retried_or_skipped_finishes_the_unwinding(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, saga_with_failing_undo("undo-triage"))
    worker()
    # b's undo fails once (the dependency is down) and has one attempt: a retry fixes it.
    to_retry = start_run(stub, "undo-triage", saga_input({"fail_times": 1}))
    # b's undo is declined for good: an operator undoes it by hand and skips it.
    to_skip = start_run(stub, "undo-triage", saga_input({"non_retryable": True}))
    wait_all(stub, [to_retry, to_skip], "NEEDS_ATTENTION")

    listed = {d.run_id: d for d in dead_letters(stub, workflow_name="undo-triage")}
    assert listed.keys() == {to_retry, to_skip}
    assert {(d.node_id, d.step_type, d.compensation, d.attempts) for d in listed.values()} == {
        ("b.compensation", "e2e-work", True, 1)
    }
    assert (listed[to_retry].error_type, listed[to_skip].error_type) == (
        "FlakyDependency",
        "CardDeclined",
    )
    for run_id in (to_retry, to_skip):
        # Half-undone: b's compensation gave up, a's has not started.
        statuses = {
            s.node_id: s.status for s in wait_for_status(stub, run_id, "NEEDS_ATTENTION").steps
        }
        assert statuses["b.compensation"] == run_pb2.STEP_STATUS_DEAD_LETTERED
        assert "a.compensation" not in statuses

    retried = stub.RetryStep(
        ws.RetryStepRequest(run_id=to_retry, node_id="b.compensation", comment="api is back")
    )
    assert status_name(retried.run.status) in ("COMPENSATING", "COMPENSATED")
    skipped = stub.SkipStep(
        ws.SkipStepRequest(
            run_id=to_skip,
            node_id="b.compensation",
            output=json_payload({"undone": "by hand"}),
            comment="refunded from the provider's dashboard",
        )
    )
    assert status_name(skipped.run.status) in ("COMPENSATING", "COMPENSATED")

    for run_id in (to_retry, to_skip):
        run = wait_for_status(stub, run_id, "COMPENSATED")
        steps = {s.node_id: s for s in run.steps}
        assert steps["a"].status == steps["b"].status == run_pb2.STEP_STATUS_COMPENSATED
        assert steps["b.compensation"].status == run_pb2.STEP_STATUS_COMPLETED
        assert steps["a.compensation"].status == run_pb2.STEP_STATUS_COMPLETED
        events = history(stub, run_id)
        assert_history_well_formed(events)
        assert events[-1].type == "RUN_COMPENSATED"
        # a is undone only after the operator's decision on b's undo.
        decided = events_of(events, "STEP_RETRIED") + events_of(events, "STEP_SKIPPED")
        [decision] = decided
        [a_undo] = events_of(events, "STEP_SCHEDULED", "a.compensation")
        assert decision.node_id == "b.compensation" and a_undo.seq > decision.seq
    assert dead_letters(stub) == []

    # The retry ran b's undo again with the same input and idempotency key: the same
    # operation, which a downstream service dedupes.
    undo_b = execution_log.started(to_retry, "b.compensation")
    assert [e.attempt for e in undo_b] == [1, 2]
    assert undo_b[0].input == undo_b[1].input
    assert {e.idempotency_key for e in undo_b} == {f"{to_retry}:b.compensation"}
    # The skipped undo ran once (and failed); the operator's output stands for it.
    assert [e.attempt for e in execution_log.started(to_skip, "b.compensation")] == [1]
    [skip] = events_of(history(stub, to_skip), "STEP_SKIPPED", "b.compensation")
    assert skip.data["output"] == {"undone": "by hand"}
    assert skip.data["error"]["type"] == "CardDeclined"
    assert [e.node_id for e in execution_log.started(to_skip)][-1] == "a.compensation"
