"""Acceptance: timers are rows in the database, not sleeps in a process (law 5).

A sleep and a retry delay both outlive a SIGKILLed control plane: the process started again
on the same database fires them at their due time, neither before nor much after, and a
timer that came due while no control plane ran fires as soon as one is back.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    Event,
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.waits import SAGA_STEPS_MODULE
from tests.support.workflows import single_step

# A control plane takes 4-6 s to start again on a loaded 2-core machine (and a new worker as
# long to connect): a timer due later than that is due while the new process runs.
DUE_AFTER_RESTART = 15.0
# Due while no control plane runs.
DUE_DURING_OUTAGE = 0.5
# "Within a second of its due time", plus what a loaded CI machine adds.
ON_TIME = 1.5
# Timestamps go through the database and protobuf; allow for their rounding.
CLOCK_TOLERANCE = 0.002


def nap(name: str) -> Any:
    """Sleeps until the RFC 3339 time input.until, then ends."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [{"id": "nap", "sleep": {"until": "input.until"}}],
        }
    )


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def first_event(stub: Any, run_id: str, kind: str) -> Event:
    return assert_eventually(
        lambda: events_of(history(stub, run_id), kind), message=f"{run_id} records {kind}"
    )[0]


def test_sleep_wakes_on_time_across_a_control_plane_restart(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, nap("nap"))
    now = time.time()
    after_restart = start_run(stub, "nap", {"until": rfc3339(now + DUE_AFTER_RESTART)})
    during_outage = start_run(stub, "nap", {"until": rfc3339(now + DUE_DURING_OUTAGE)})
    started = first_event(stub, after_restart, "SLEEP_STARTED")
    due = started.data["due_at"]
    assert abs(due - (now + DUE_AFTER_RESTART)) <= CLOCK_TOLERANCE
    first_event(stub, during_outage, "SLEEP_STARTED")

    control_plane.kill()
    control_plane.restart()
    restarted_at = time.time()
    stub = control_plane.stub

    assert restarted_at < due - ON_TIME, (
        f"the restart took until {due - restarted_at:.1f} s before the due time: too slow "
        "to tell a timer the new process fires from one it merely finds late"
    )
    run = get_run(stub, after_restart)
    assert status_name(run.status) == "WAITING", run
    assert f"sleep of 'nap' until {rfc3339(due)[:19]}" in run.waiting_for, run.waiting_for
    (nap_step,) = run.steps
    assert (nap_step.kind, nap_step.status) == ("sleep", run_pb2.STEP_STATUS_WAITING)

    wait_for_status(stub, during_outage, "COMPLETED")
    wait_for_status(stub, after_restart, "COMPLETED", timeout=DUE_AFTER_RESTART + 30)

    events = history(stub, after_restart)
    assert_history_well_formed(events)
    (fired,) = events_of(events, "SLEEP_FIRED", "nap")
    print(f"\nsleep due {due:.3f}, fired {fired.time - due:+.3f} s from it")
    assert due - CLOCK_TOLERANCE <= fired.time <= due + ON_TIME
    assert [e.type for e in events] == [
        "RUN_STARTED",
        "SLEEP_STARTED",
        "SLEEP_FIRED",
        "RUN_COMPLETED",
    ]
    # Due while nothing ran: not lost, fired as soon as the new process looked.
    events = history(stub, during_outage)
    (fired,) = events_of(events, "SLEEP_FIRED", "nap")
    print(f"outage sleep fired {fired.time - restarted_at:+.3f} s from the restart")
    assert restarted_at - ON_TIME <= fired.time <= restarted_at + ON_TIME


RETRY_AFTER_RESTART = {
    "max_attempts": 3,
    "initial_interval_seconds": DUE_AFTER_RESTART,
    "backoff_coefficient": 1,
    "max_interval_seconds": DUE_AFTER_RESTART,
    "jitter": 0,
}


def test_retry_delay_is_a_durable_timer(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, single_step("retry-later", RETRY_AFTER_RESTART))
    worker(SAGA_STEPS_MODULE)
    run_id = start_run(stub, "retry-later", {"fail_times": 1, "trail": []})
    scheduled = first_event(stub, run_id, "RETRY_SCHEDULED")
    due = scheduled.data["due_at"]
    assert scheduled.data["delay_seconds"] == DUE_AFTER_RESTART

    control_plane.kill()
    control_plane.restart()
    # The first worker comes back with a growing back-off; a new one connects at once. So a
    # worker is connected and idle long before the retry is due: only the timer holds the
    # attempt back.
    worker(SAGA_STEPS_MODULE)
    ready_at = time.time()
    stub = control_plane.stub
    assert ready_at < due - ON_TIME, (
        f"restart and worker took until {due - ready_at:.1f} s before the due time"
    )
    (step,) = get_run(stub, run_id).steps
    assert step.status == run_pb2.STEP_STATUS_RETRY_WAIT, step
    next_attempt_at = step.next_attempt_at.seconds + step.next_attempt_at.nanos / 1e9
    assert abs(next_attempt_at - due) <= CLOCK_TOLERANCE

    wait_for_status(stub, run_id, "COMPLETED", timeout=DUE_AFTER_RESTART + 30)

    executions = execution_log.started(run_id, "step")
    assert [e.attempt for e in executions] == [1, 2], executions
    retried = executions[1]
    print(f"\nretry due {due:.3f}, began {retried.time - due:+.3f} s from it")
    assert due <= retried.time <= due + ON_TIME
    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert [(e.type, e.attempt) for e in events if e.node_id == "step"] == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_FAILED", 1),
        ("RETRY_SCHEDULED", 2),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_COMPLETED", 2),
    ]
    (started,) = events_of(events, "ATTEMPT_STARTED", "step")[1:]
    assert started.time >= due - CLOCK_TOLERANCE
