"""Acceptance: GetRun and `surefoot runs why` say what keeps a run's task from finishing.

A retry timer (attempt n of m, due when, the last error), a task that no connected worker
implements in the version it asks for (which versions are connected and declared), a task
queued behind a busy worker, a task running on a worker, and one whose worker stopped
heartbeating (a SIGSTOPped process whose stream stays open), which turns back into a running
one when its heartbeats resume.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_blocked_on.blocked_support import (
    CLOCK_TOLERANCE,
    blocked_on,
    kind_name,
    seconds,
    why,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    StartWorker,
    start_worker,
    surefoot_command,
)
from tests.support.runs import (
    events_of,
    get_run,
    history,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import single_step, task_node

SUPPORT = Path(__file__).resolve().parents[1] / "support"
ROUTED_V1 = SUPPORT / "routed_steps_v1.py"
ROUTED_V2 = SUPPORT / "routed_steps_v2.py"
# Long enough that a heartbeat judged late (after two thirds of it) can resume before the
# lease runs out, on a loaded machine.
LONG_LEASE = 12.0


def test_retry_timer_says_attempt_n_of_m_when_and_the_last_error(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    slow_retry = {
        "max_attempts": 5,
        "initial_interval_seconds": 3600,
        "backoff_coefficient": 2,
        "max_interval_seconds": 7200,
        "jitter": 0.1,
    }
    register(stub, single_step("flaky", slow_retry))
    worker()
    run_id = start_run(stub, "flaky", {"fail_times": 3})
    run = blocked_on(stub, run_id, "RETRY")

    (retry,) = events_of(history(stub, run_id), "RETRY_SCHEDULED")
    (failed,) = events_of(history(stub, run_id), "ATTEMPT_FAILED")
    (blocker,) = run.blocked_on
    assert blocker.node_id == "step"
    assert blocker.retry.attempt == 2
    assert blocker.retry.policy_attempt == 2
    assert blocker.retry.max_attempts == 5
    assert blocker.retry.step_type == "e2e-work" and blocker.retry.step_version == "1"
    assert blocker.retry.last_error.type == "FlakyDependency"
    assert blocker.retry.last_error.message == "step attempt 1: the dependency is down"
    assert seconds(blocker.until) == pytest.approx(retry.data["due_at"], abs=CLOCK_TOLERANCE)
    assert seconds(blocker.since) == pytest.approx(failed.time, abs=CLOCK_TOLERANCE)
    assert "attempt 2 of 5" in blocker.description
    assert "last error FlakyDependency: step attempt 1: the dependency is down" in (
        blocker.description
    )
    assert why(control_plane, run_id) == [f"retry: {blocker.description}"]


def test_task_no_connected_worker_implements_names_the_versions_connected(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    node = task_node("route", None, "input", step_type="e2e-routed")
    node["task"]["step_version"] = "2"
    register(stub, definition_from_dict({"name": "wants-v2", "version": "1", "nodes": [node]}))
    worker(ROUTED_V1)
    run_id = start_run(stub, "wants-v2", {"order": "A-2"})
    run = blocked_on(stub, run_id, "NO_CAPABLE_WORKER")

    (blocker,) = run.blocked_on
    task = blocker.task
    assert blocker.node_id == "route"
    assert (task.step_type, task.step_version) == ("e2e-routed", "2")
    assert list(task.connected_versions) == ["1"]
    assert list(task.declared_versions) == ["1"]
    assert task.capable_workers == 0
    assert task.worker_id == ""
    (scheduled,) = events_of(history(stub, run_id), "STEP_SCHEDULED")
    assert seconds(blocker.since) == pytest.approx(scheduled.time, abs=CLOCK_TOLERANCE)
    assert "needs e2e-routed@2: no connected worker can take it" in blocker.description
    assert "connected: e2e-routed@1" in blocker.description
    assert why(control_plane, run_id) == [f"no_capable_worker: {blocker.description}"]

    # A worker of version 2 takes it: the run ends and nothing blocks it.
    worker(ROUTED_V2)
    done = wait_for_status(stub, run_id, "COMPLETED")
    assert list(done.blocked_on) == []


def test_task_behind_a_busy_worker_is_queued_not_missing_a_worker(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    stub = control_plane.stub
    register(stub, single_step("busy", {"max_attempts": 3}))
    command = surefoot_command(
        "worker", str(STEPS_MODULE), "--address", control_plane.address, "--concurrency", "1"
    )
    one_slot = processes.start("worker", command)
    try:
        worker_id = one_slot.wait_for_stdout(WORKER_CONNECTED).group(1)
        first = start_run(stub, "busy", {"sleep_seconds": 300})
        blocked_on(stub, first, "RUNNING")
        second = start_run(stub, "busy", {"sleep_seconds": 300})
        run = blocked_on(stub, second, "QUEUED")

        (blocker,) = run.blocked_on
        assert (blocker.task.capable_workers, blocker.task.free_slots) == (1, 0)
        assert list(blocker.task.connected_versions) == ["1"]
        assert "1 capable worker(s), all busy" in blocker.description
        (running,) = get_run(stub, first).blocked_on
        assert running.task.worker_id == worker_id
    finally:
        one_slot.kill()


@pytest.fixture
def long_lease_plane(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """A control plane whose leases last LONG_LEASE seconds: a late heartbeat shows for
    seconds before the lease runs out, and can still resume in time."""
    server = ControlPlane(processes, database_url, lease_seconds=LONG_LEASE)
    server.start()
    yield server
    server.stop()


def test_late_heartbeat_names_the_worker_and_when_its_lease_runs_out(
    long_lease_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    plane = long_lease_plane
    stub = plane.stub
    register(stub, single_step("long-work", {"max_attempts": 3}))
    worker = start_worker(processes, plane.address)
    try:
        run_id = start_run(stub, "long-work", {"sleep_seconds": 300})
        running = blocked_on(stub, run_id, "RUNNING")
        first = running.blocked_on[0]
        assert first.task.worker_id == worker.worker_id
        assert first.task.step_type == "e2e-work"
        assert f"running on worker {worker.worker_id}" in first.description
        # Heartbeats move the last heartbeat on (the lease's expiry less the lease).
        assert_eventually(
            lambda: (
                seconds(get_run(stub, run_id).blocked_on[0].task.last_heartbeat_at)
                > seconds(first.task.last_heartbeat_at)
            ),
            message="a heartbeat extends the lease",
        )

        # The worker's process is frozen: its stream stays open, its heartbeats stop.
        worker.process.send_signal(signal.SIGSTOP)
        stopped_at = time.time()
        late = blocked_on(stub, run_id, "HEARTBEAT_LATE", timeout=LONG_LEASE * 2)
        blocker = late.blocked_on[0]
        task = blocker.task
        assert task.worker_id == worker.worker_id
        assert blocker.since == task.last_heartbeat_at
        assert blocker.until == task.lease_expires_at
        assert seconds(task.lease_expires_at) == pytest.approx(
            seconds(task.last_heartbeat_at) + LONG_LEASE, abs=CLOCK_TOLERANCE
        )
        # Late: silent for more than two thirds of the lease, and not before it stopped.
        assert time.time() - seconds(task.last_heartbeat_at) > LONG_LEASE * 2 / 3
        assert seconds(task.last_heartbeat_at) <= stopped_at + CLOCK_TOLERANCE
        assert f"heartbeat of worker {worker.worker_id} is late" in blocker.description
        assert "lease runs out at" in blocker.description
        line = why(plane, run_id)
        assert [entry.split(":", 1)[0] for entry in line] == ["heartbeat_late"], line

        # Heartbeats resume before the lease runs out: the attempt is running again.
        worker.process.send_signal(signal.SIGCONT)
        again = blocked_on(stub, run_id, "RUNNING", timeout=LONG_LEASE)
        assert again.blocked_on[0].task.attempt == 1
        assert [kind_name(b.kind) for b in get_run(stub, run_id).blocked_on] == ["RUNNING"]
        assert run_pb2.STEP_STATUS_RUNNING in [s.status for s in again.steps]
    finally:
        worker.kill()
