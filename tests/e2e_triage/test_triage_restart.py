"""A dead letter is rows in the database: it survives a SIGKILL of the control plane, and a
retry after the restart gets a fresh retry budget. A retried step that gives up again is
dead-lettered again, listed again with its attempts, and can be retried again.

About a crash of real processes on the production store, so PostgreSQL only.
"""

from __future__ import annotations

from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_triage.triage_support import POSTGRES_ONLY, dead_letters
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import wait_until_a_worker_connected
from tests.support.workflows import single_step

# Two attempts per budget; the step fails its first five attempts.
TWO_ATTEMPTS = {
    "max_attempts": 2,
    "initial_interval_seconds": 0.2,
    "backoff_coefficient": 1,
    "max_interval_seconds": 0.2,
    "jitter": 0,
}
FAILS_FIVE_TIMES = {"trail": [], "fail_times": 5}


@POSTGRES_ONLY
def test_a_dead_letter_survives_a_crash_and_a_retry_that_fails_is_dead_lettered_again(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    register(control_plane.stub, single_step("crash-triage", TWO_ATTEMPTS))
    worker()
    run_id = start_run(control_plane.stub, "crash-triage", FAILS_FIVE_TIMES)
    wait_for_status(control_plane.stub, run_id, "NEEDS_ATTENTION")
    [first] = dead_letters(control_plane.stub)
    assert (first.run_id, first.node_id, first.attempts) == (run_id, "step", 2)
    assert first.error_message == "step attempt 2: the dependency is down"
    before_crash = history(control_plane.stub, run_id)

    control_plane.kill()
    control_plane.restart()
    wait_until_a_worker_connected(control_plane)  # the worker reconnects on its own
    stub = control_plane.stub

    assert dead_letters(stub) == [first]
    assert history(stub, run_id) == before_crash
    stub.RetryStep(ws.RetryStepRequest(run_id=run_id, node_id="step"), timeout=30)

    # A fresh budget of two attempts (3 and 4), both failing: dead-lettered again.
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    [again] = dead_letters(stub)
    assert (again.run_id, again.node_id, again.attempts) == (run_id, "step", 4)
    assert again.error_message == "step attempt 4: the dependency is down"
    assert again.dead_lettered_at.ToNanoseconds() > first.dead_lettered_at.ToNanoseconds()
    [group] = stub.ListDeadLetters(ws.ListDeadLettersRequest(grouped=True), timeout=30).groups
    assert (group.count, group.sample_run_id) == (1, run_id)

    # Retried again: attempt 5 fails and is retried under the fresh budget, 6 succeeds.
    stub.RetryStep(ws.RetryStepRequest(run_id=run_id, node_id="step"), timeout=30)
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output)["trail"] == ["step", "after"]
    assert dead_letters(stub) == []

    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert events[: len(before_crash)] == before_crash
    step_events = [(e.type, e.attempt) for e in events if e.node_id == "step"]
    assert [t for t in step_events if t[0] in ("STEP_DEAD_LETTERED", "STEP_RETRIED")] == [
        ("STEP_DEAD_LETTERED", 2),
        ("STEP_RETRIED", 3),
        ("STEP_DEAD_LETTERED", 4),
        ("STEP_RETRIED", 5),
    ]
    # The operator's retry opened a new budget: attempt 3's failure was retried, not given up.
    assert ("RETRY_SCHEDULED", 4) in step_events and ("RETRY_SCHEDULED", 6) in step_events
    assert len(events_of(events, "RUN_COMPLETED")) == 1
    attempts = execution_log.started(run_id, "step")
    assert [e.attempt for e in attempts] == [1, 2, 3, 4, 5, 6]
    assert {e.idempotency_key for e in attempts} == {f"{run_id}:step"}
