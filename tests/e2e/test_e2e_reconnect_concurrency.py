"""A worker that reconnects while its handlers still run does not take more than its
concurrency: the new stream's credit leaves room for them, and each gives its slot back when
it ends."""

from __future__ import annotations

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    surefoot_command,
)
from tests.support.runs import register, start_run, wait_for_status
from tests.support.workflows import QUICK_RETRY, single_step


def test_a_reconnected_worker_keeps_to_its_concurrency(
    control_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    register(control_plane.stub, single_step("one-at-a-time", QUICK_RETRY))
    worker = processes.start(
        "worker",
        surefoot_command(
            "worker", str(STEPS_MODULE), "--address", control_plane.address, "--concurrency", "1"
        ),
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    # The first attempt runs for 8 s: long enough to outlive the control plane's restart.
    slow = start_run(
        control_plane.stub, "one-at-a-time", {"trail": [], "sleep_seconds": 8, "sleep_attempts": 1}
    )
    assert_eventually(lambda: execution_log.started(slow, "step"), timeout=60)

    control_plane.kill()
    control_plane.restart()
    quick = start_run(control_plane.stub, "one-at-a-time", {"trail": []})

    for run_id in (slow, quick):
        wait_for_status(control_plane.stub, run_id, "COMPLETED", timeout=120)
    # Never two handlers at once in the worker of concurrency 1.
    spans: dict[tuple[str, str, int], list[float]] = {}
    for entry in execution_log.entries():
        spans.setdefault((entry.run_id, entry.node_id, entry.attempt), []).append(entry.time)
    intervals = sorted((min(times), max(times)) for times in spans.values())
    assert len(intervals) >= 4, intervals  # step and after of both runs
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert start >= end, f"two handlers ran at once: {intervals}"
