"""PauseRun and ResumeRun: a paused run starts no new step, and resuming hands it out at once.

The attempt running when the run is paused finishes and is recorded; the step it leads to
is scheduled but its task row is held ('paused'), so no worker can claim it, and GetRun says
the run is blocked on the pause (by whom, why). Every refusal writes nothing.
"""

from __future__ import annotations

import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_run_control.control_support import (
    four_steps,
    refused,
    seqs,
    task_statuses,
)
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
    wait_for_status,
)


def test_a_paused_run_finishes_its_attempt_and_starts_nothing_until_resumed(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_steps("held"))
    worker()
    run_id = start_run(stub, "held", {"trail": [], "b": {"sleep_seconds": 1.5}})
    assert_eventually(lambda: execution_log.started(run_id, "b"), message="step b began")

    paused = stub.PauseRun(
        ws.PauseRunRequest(run_id=run_id, reason="card processor incident"), timeout=30
    ).run
    assert paused.paused.paused_by and paused.paused.reason == "card processor incident"
    assert paused.HasField("paused_at")

    # b was in flight: it finishes and is recorded; c is scheduled and held.
    assert_eventually(
        lambda: events_of(history(stub, run_id), "STEP_SCHEDULED", "c"),
        message="c is scheduled after b completed",
    )
    assert events_of(history(stub, run_id), "ATTEMPT_COMPLETED", "b")
    assert task_statuses(control_plane.database_url, run_id) == {"c": "paused"}
    run = get_run(stub, run_id)
    (blocker,) = run.blocked_on
    assert blocker.kind == run_pb2.BLOCKED_ON_KIND_PAUSED and blocker.node_id == "c"
    assert blocker.paused.reason == "card processor incident"
    assert blocker.paused.paused_by == paused.paused.paused_by
    assert blocker.HasField("since")
    assert not execution_log.started(run_id, "c")

    resumed = stub.ResumeRun(
        ws.ResumeRunRequest(run_id=run_id, reason="processor back"), timeout=30
    ).run
    assert not resumed.HasField("paused")
    done = wait_for_status(stub, run_id, "COMPLETED")
    assert not done.HasField("paused")
    assert [e.node_id for e in execution_log.started(run_id)] == ["a", "b", "c", "d"]

    events = history(stub, run_id)
    assert_history_well_formed(events)
    (pause,) = events_of(events, "RUN_PAUSED")
    (resume,) = events_of(events, "RUN_RESUMED")
    assert resume.data.get("reason") == "processor back"
    assert pause.principal == paused.paused.paused_by
    assert pause.data["reason"] == "card processor incident"
    assert resume.principal == pause.principal
    (b_done,) = events_of(events, "ATTEMPT_COMPLETED", "b")
    (c_started,) = events_of(events, "ATTEMPT_STARTED", "c")
    assert pause.seq < b_done.seq < resume.seq < c_started.seq


def test_a_queued_task_of_a_paused_run_is_not_claimed_by_a_worker_that_connects(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    """A step waiting for a worker (none is connected yet) is held too, and its blocker says
    paused rather than "no capable worker"."""
    stub = control_plane.stub
    register(stub, four_steps("held-queued"))
    run_id = start_run(stub, "held-queued", {"trail": []})
    stub.PauseRun(ws.PauseRunRequest(run_id=run_id, reason="hold"), timeout=30)
    assert task_statuses(control_plane.database_url, run_id) == {"a": "paused"}
    (blocker,) = get_run(stub, run_id).blocked_on
    assert blocker.kind == run_pb2.BLOCKED_ON_KIND_PAUSED and blocker.node_id == "a"

    worker()
    # Another run, started later, goes through the same worker: the claims it took were
    # made with the held (older, so first in line) task there to take.
    other = start_run(stub, "held-queued", {"trail": []})
    wait_for_status(stub, other, "COMPLETED")
    assert task_statuses(control_plane.database_url, run_id) == {"a": "paused"}
    assert not execution_log.started(run_id)

    stub.ResumeRun(ws.ResumeRunRequest(run_id=run_id), timeout=30)
    wait_for_status(stub, run_id, "COMPLETED")
    assert [e.node_id for e in execution_log.started(run_id)] == ["a", "b", "c", "d"]


@pytest.mark.parametrize("rpc", ["PauseRun", "ResumeRun"])
def test_refusals_write_nothing(control_plane: ControlPlane, rpc: str) -> None:
    stub = control_plane.stub
    register(stub, four_steps("refused"))
    waiting = start_run(stub, "refused", {"trail": []})
    ended = start_run(stub, "refused", {"trail": []})
    stub.CancelRun(ws.CancelRunRequest(run_id=ended, reason="gone"), timeout=30)
    call = getattr(stub, rpc)
    request = ws.PauseRunRequest if rpc == "PauseRun" else ws.ResumeRunRequest
    url = control_plane.database_url

    def refusal(run_id: str) -> tuple[str, str]:
        before = (row_counts(url), seqs(stub, waiting), seqs(stub, ended))
        error = refused(call, request(run_id=run_id))
        assert (row_counts(url), seqs(stub, waiting), seqs(stub, ended)) == before
        return error.code().name, error.details() or ""

    assert refusal("") == ("INVALID_ARGUMENT", "run_id: is required")
    code, details = refusal("00000000-0000-0000-0000-000000000000")
    assert code == "NOT_FOUND" and "not found" in details
    code, details = refusal(ended)
    assert code == "FAILED_PRECONDITION" and "CANCELLED" in details
    if rpc == "ResumeRun":
        code, details = refusal(waiting)
        assert code == "FAILED_PRECONDITION" and "not paused" in details
    else:
        stub.PauseRun(ws.PauseRunRequest(run_id=waiting, reason="first"), timeout=30)
        code, details = refusal(waiting)
        assert code == "FAILED_PRECONDITION" and "already paused" in details
        assert get_run(stub, waiting).paused.reason == "first"
