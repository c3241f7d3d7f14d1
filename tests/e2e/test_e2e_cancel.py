"""Cancelling a running run: it ends CANCELLED at once, and its in-flight step cannot revive it.

The step's worker is told to stop; whatever that attempt reports afterwards arrives for a
run that has ended, so it is recorded as ignored and the run does not advance.
"""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
)
from tests.support.workflows import three_steps


def test_cancel_running_run_ignores_the_in_flight_result(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("cancelled"))
    worker()
    run_id = start_run(stub, "cancelled", {"trail": [], "b": {"sleep_seconds": 60}})
    assert_eventually(lambda: execution_log.started(run_id, "b"), message="step b began")

    request = ws.CancelRunRequest(run_id=run_id, reason="the customer changed their mind")
    cancelled = stub.CancelRun(request, timeout=30).run

    assert cancelled.status == run_pb2.RUN_STATUS_CANCELLED
    assert get_run(stub, run_id).status == run_pb2.RUN_STATUS_CANCELLED
    # The worker stops the attempt and reports it; the report comes after the run ended.
    ignored = assert_eventually(
        lambda: events_of(history(stub, run_id), "RESULT_IGNORED"),
        message="the in-flight attempt's result is recorded as ignored",
    )
    assert [(e.node_id, e.attempt) for e in ignored] == [("b", 1)]
    assert "CANCELLED" in ignored[0].data["reason"]
    assert ignored[0].data["result"]["error"]["type"] == "Cancelled"
    # The handler saw the cancellation and stopped long before its 60 s were up.
    assert_eventually(
        lambda: [e for e in execution_log.entries() if e.phase != "started" and e.node_id == "b"],
        message="the attempt stopped in the worker",
    )

    events = history(stub, run_id)
    assert_history_well_formed(events)
    (run_cancelled,) = events_of(events, "RUN_CANCELLED")
    assert run_cancelled.data["reason"] == "the customer changed their mind"
    after_cancel = [e.type for e in events if e.seq > run_cancelled.seq]
    assert after_cancel == ["RESULT_IGNORED"]
    assert not events_of(events, "ATTEMPT_COMPLETED", "b")
    assert not events_of(events, "STEP_SCHEDULED", "c")
    assert get_run(stub, run_id).status == run_pb2.RUN_STATUS_CANCELLED
    assert [e.node_id for e in execution_log.started(run_id)] == ["a", "b"]

    shown = run_cli("runs", "show", run_id, "--address", control_plane.address)
    assert shown.returncode == 0 and "CANCELLED" in shown.stdout, shown
