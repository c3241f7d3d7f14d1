"""Acceptance: failing steps are retried with growing, jittered delays, then dead-lettered.

A step that keeps failing waits before each new attempt as a durable timer; once its
attempts are exhausted, or at once when its error is not retryable, it goes to the dead
letters and the run needs attention, showing the step's last error.
"""

from __future__ import annotations

import pytest
from surefoot.v1 import run_pb2

from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import single_step

KEEPS_FAILING_POLICY = {
    "max_attempts": 4,
    "initial_interval_seconds": 0.2,
    "backoff_coefficient": 2,
    "max_interval_seconds": 10,
    "jitter": 0.1,
}
# Timestamps go through the database and protobuf; allow for their rounding.
CLOCK_TOLERANCE = 0.002


def test_failing_step_is_retried_with_backoff_then_dead_lettered(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, single_step("keeps-failing", KEEPS_FAILING_POLICY))
    worker()

    run_id = start_run(stub, "keeps-failing", {"fail_always": True})
    recovers_id = start_run(stub, "keeps-failing", {"fail_times": 2})
    run = wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert [(e.type, e.attempt) for e in events if e.node_id == "step"] == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_FAILED", 1),
        ("RETRY_SCHEDULED", 2),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_FAILED", 2),
        ("RETRY_SCHEDULED", 3),
        ("ATTEMPT_STARTED", 3),
        ("ATTEMPT_FAILED", 3),
        ("RETRY_SCHEDULED", 4),
        ("ATTEMPT_STARTED", 4),
        ("ATTEMPT_FAILED", 4),
        ("STEP_DEAD_LETTERED", 4),
    ]
    assert not [e for e in events if e.node_id == "after"]

    # Delay n is drawn from 0.2 * 2^(n-1) * (1 ± 0.1): growing, and jittered.
    delays = [e.data["delay_seconds"] for e in events_of(events, "RETRY_SCHEDULED")]
    bases = [0.2, 0.4, 0.8]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.9 - 1e-6 <= delay <= base * 1.1 + 1e-6, (delays, bases)
    assert delays[0] < delays[1] < delays[2], delays
    assert any(abs(delay - base) > 1e-6 for delay, base in zip(delays, bases, strict=True)), delays
    # Each retry waited at least its delay between the failure and the next attempt.
    failures = events_of(events, "ATTEMPT_FAILED")
    starts = events_of(events, "ATTEMPT_STARTED")
    for failure, retry, next_start in zip(
        failures[:-1], events_of(events, "RETRY_SCHEDULED"), starts[1:], strict=True
    ):
        assert retry.data["due_at"] == pytest.approx(
            failure.time + retry.data["delay_seconds"], abs=CLOCK_TOLERANCE
        )
        waited = next_start.time - failure.time
        assert waited >= retry.data["delay_seconds"] - CLOCK_TOLERANCE, (failure, retry, next_start)

    # The run shows the step's last error; the step is dead-lettered after four failures.
    assert run.last_error.type == "FlakyDependency"
    assert run.last_error.message == "step attempt 4: the dependency is down"
    (step,) = [s for s in run.steps if s.node_id == "step"]
    assert step.status == run_pb2.STEP_STATUS_DEAD_LETTERED
    assert [a.outcome for a in step.attempts] == [run_pb2.ATTEMPT_OUTCOME_FAILED] * 4
    assert [e.attempt for e in execution_log.started(run_id)] == [1, 2, 3, 4]
    assert {e.node_id for e in execution_log.started(run_id)} == {"step"}
    dead_letter = events_of(events, "STEP_DEAD_LETTERED")[0]
    assert dead_letter.data["error"]["type"] == "FlakyDependency"

    shown = run_cli("runs", "show", run_id, "--address", control_plane.address)
    assert shown.returncode == 0, shown.stderr
    assert "NEEDS_ATTENTION" in shown.stdout
    assert "FlakyDependency: step attempt 4: the dependency is down" in shown.stdout

    # A step that fails twice and then succeeds: the run goes on after its third attempt.
    recovered = wait_for_status(stub, recovers_id, "COMPLETED")
    assert payload_value(recovered.output) == {"trail": ["step", "after"], "attempt": 1}
    recovered_events = history(stub, recovers_id)
    assert [e.attempt for e in events_of(recovered_events, "ATTEMPT_FAILED", "step")] == [1, 2]
    assert [e.attempt for e in events_of(recovered_events, "ATTEMPT_COMPLETED")] == [3, 1]
    assert [(e.node_id, e.attempt) for e in execution_log.started(recovers_id)] == [
        ("step", 1),
        ("step", 2),
        ("step", 3),
        ("after", 1),
    ]


def test_non_retryable_error_dead_letters_at_once(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    policy = {**KEEPS_FAILING_POLICY, "non_retryable_error_types": ["PermanentFailure"]}
    register(stub, single_step("fails-for-good", policy))
    worker()

    # A step that raises NonRetryableError, and one whose error type the policy lists.
    declined = start_run(stub, "fails-for-good", {"non_retryable": True})
    vanished = start_run(stub, "fails-for-good", {"permanent": True})

    for run_id, error_type in ((declined, "CardDeclined"), (vanished, "PermanentFailure")):
        run = wait_for_status(stub, run_id, "NEEDS_ATTENTION")
        events = history(stub, run_id)
        assert [(e.type, e.attempt) for e in events if e.node_id == "step"] == [
            ("STEP_SCHEDULED", 1),
            ("ATTEMPT_STARTED", 1),
            ("ATTEMPT_FAILED", 1),
            ("STEP_DEAD_LETTERED", 1),
        ]
        dead_letter = events_of(events, "STEP_DEAD_LETTERED")[0]
        assert dead_letter.data["reason"] == "non-retryable error"
        assert dead_letter.data["error"]["type"] == error_type
        assert run.last_error.type == error_type
        assert [e.attempt for e in execution_log.started(run_id)] == [1]
