"""Acceptance: SIGKILL the worker while step 2 runs; another worker finishes the run.

Law 3: the step whose worker died is handed to another worker with the same input and the
same idempotency key; the steps that had completed (checkpointed) do not run again.
"""

from __future__ import annotations

from tests.support.eventually import assert_eventually
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
from tests.support.workflows import three_steps


def test_step_of_a_killed_worker_runs_again_on_another_worker(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("crash-worker"))
    first = worker()
    # Step b's first attempt would take a minute; the attempt after the crash is quick.
    run_id = start_run(
        stub, "crash-worker", {"trail": [], "b": {"sleep_seconds": 60, "sleep_attempts": 1}}
    )
    step_b_began = assert_eventually(
        lambda: execution_log.started(run_id, "b"), message="step b began on the first worker"
    )
    second = worker()

    first.kill()
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output) == {"trail": ["a", "b", "c"], "attempt": 1}
    # b ran twice, once per worker, with the same input and idempotency key; a and c once.
    runs_of_b = execution_log.started(run_id, "b")
    assert [(e.attempt, e.pid) for e in runs_of_b] == [(1, first.pid), (2, second.pid)]
    assert runs_of_b[0] == step_b_began[0]
    assert (
        runs_of_b[0].input
        == runs_of_b[1].input
        == {
            "trail": ["a"],
            "sleep_seconds": 60,
            "sleep_attempts": 1,
        }
    )
    assert runs_of_b[0].idempotency_key == runs_of_b[1].idempotency_key
    assert [(e.node_id, e.pid) for e in execution_log.started(run_id) if e.node_id != "b"] == [
        ("a", first.pid),
        ("c", second.pid),
    ]

    # History shows both attempts of b: the lost one on the first worker, the completed one
    # on the second, scheduled once with the key both executions were given.
    events = history(stub, run_id)
    assert_history_well_formed(events)
    b_events = [(e.type, e.attempt) for e in events if e.node_id == "b"]
    assert b_events == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_LOST", 1),
        ("RETRY_SCHEDULED", 2),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_COMPLETED", 2),
    ]
    started_by = {e.attempt: e.data["worker_id"] for e in events_of(events, "ATTEMPT_STARTED", "b")}
    assert started_by == {1: first.worker_id, 2: second.worker_id}
    (scheduled,) = events_of(events, "STEP_SCHEDULED", "b")
    assert scheduled.data["idempotency_key"] == runs_of_b[0].idempotency_key
    assert scheduled.data["input"] == runs_of_b[0].input
    for node in ("a", "c"):
        assert [e.attempt for e in events_of(events, "ATTEMPT_COMPLETED", node)] == [1]
        assert events_of(events, "ATTEMPT_LOST", node) == []
