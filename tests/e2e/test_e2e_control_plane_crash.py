"""Acceptance: SIGKILL the control plane with runs in flight, start it again on its database.

Law 1 and 2: everything that must survive a crash is in the database, and a step's output
is committed with what follows it. So every run completes, no checkpointed step runs again,
and the history recorded before the crash is still there, unchanged and without gaps.
"""

from __future__ import annotations

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    Event,
    assert_history_well_formed,
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import three_steps

RUNS = 20
NODES = ("a", "b", "c")


def run_input(index: int) -> dict[str, object]:
    # Staggered durations, so that at the crash some runs are in each of their steps.
    seconds = 0.3 + 0.15 * (index % 5)
    return {"trail": [index], **{node: {"sleep_seconds": seconds} for node in NODES}}


def test_runs_in_flight_survive_a_control_plane_crash(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    register(control_plane.stub, three_steps("crash-server"))
    worker()
    run_ids = [start_run(control_plane.stub, "crash-server", run_input(i)) for i in range(RUNS)]
    # Half of the 60 steps have begun: some runs are in their first step, some further on.
    assert_eventually(
        lambda: len(execution_log.started()) >= RUNS * len(NODES) // 2,
        message="half of the steps began",
    )
    before_crash = {run_id: history(control_plane.stub, run_id) for run_id in run_ids}

    control_plane.kill()
    control_plane.restart()
    # The worker reconnects on its own, to the same address.

    for index, run_id in enumerate(run_ids):
        run = wait_for_status(control_plane.stub, run_id, "COMPLETED", timeout=90)
        assert payload_value(run.output)["trail"] == [index, "a", "b", "c"]
    after = {run_id: history(control_plane.stub, run_id) for run_id in run_ids}

    assert any(not events_of(events, "RUN_COMPLETED") for events in before_crash.values()), (
        "the crash came too late: no run was in flight"
    )
    for run_id in run_ids:
        assert_history_survived(before_crash[run_id], after[run_id])
    assert_no_checkpointed_step_ran_again(before_crash, after, execution_log)


def assert_history_survived(before: list[Event], after: list[Event]) -> None:
    """What was recorded before the crash is a prefix of the final history, which is whole."""
    assert_history_well_formed(after)
    assert after[: len(before)] == before
    for node in NODES:
        assert len(events_of(after, "ATTEMPT_COMPLETED", node)) == 1, after
    assert [e.type for e in after].count("RUN_COMPLETED") == 1
    assert after[-1].type == "RUN_COMPLETED"


def assert_no_checkpointed_step_ran_again(
    before_crash: dict[str, list[Event]],
    after: dict[str, list[Event]],
    execution_log: ExecutionLog,
) -> None:
    executions = execution_log.started()
    checkpointed = {
        (run_id, e.node_id)
        for run_id, events in before_crash.items()
        for e in events_of(events, "ATTEMPT_COMPLETED")
    }
    assert checkpointed, "the crash came too early: no step had completed"
    counts = execution_log.starts_per_step()
    assert set(counts) == {(run_id, node) for run_id in before_crash for node in NODES}
    ran_again = {step for step, count in counts.items() if count > 1}
    assert not ran_again & checkpointed, sorted(ran_again & checkpointed)
    # A step in flight at the crash may run once more, with the same input and key: its
    # attempt was leased by the crashed process, and lost when that lease ran out.
    for run_id, node in ran_again:
        runs_of_step = [e for e in executions if (e.run_id, e.node_id) == (run_id, node)]
        assert len(runs_of_step) == 2, runs_of_step
        first, second = runs_of_step
        assert second.attempt == first.attempt + 1, runs_of_step
        assert first.input == second.input
        assert first.idempotency_key == second.idempotency_key
        lost = events_of(after[run_id], "ATTEMPT_LOST", node)
        assert [e.attempt for e in lost] == [first.attempt], after[run_id]
