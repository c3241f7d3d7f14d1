"""Acceptance: PostgreSQL stopped for 10 s under load.

During the outage a client is answered UNAVAILABLE (never UNKNOWN, never a hang), the
control plane says so in a few lines instead of a traceback per retry, and once the
database is back every run completes: nothing acknowledged was lost, and what was refused
is done when the client retries with the same request id.
"""

from __future__ import annotations

import time

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.eventually import assert_eventually
from tests.support.private_postgres import PrivatePostgres
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    get_run,
    history,
    json_payload,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import three_steps

OUTAGE_SECONDS = 10.0
RUNS = 6
# Each step sleeps, so that attempts are running on the worker when the database goes.
STEP_SECONDS = 1.0
# The bound for what a 10 s outage may write to the log.
MAX_LOG_LINES = 20
# The backoff cap is 1 s; a loaded 2-core machine gets some slack on top.
RESUME_SECONDS = 3.0
CALL_TIMEOUT = 10.0


def run_input() -> dict[str, object]:
    shape = {"sleep_seconds": STEP_SECONDS}
    return {"trail": [], "a": shape, "b": shape, "c": shape}


def refused_code(call: object) -> grpc.StatusCode:
    """The status `call()` failed with; it must fail."""
    with pytest.raises(grpc.RpcError) as raised:
        call()  # type: ignore[operator]
    error = raised.value
    assert isinstance(error, grpc.Call)
    return error.code()


@pytest.mark.postgres
def test_postgres_stopped_for_ten_seconds_under_load(
    cluster: PrivatePostgres, control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("outage"))
    worker()
    run_ids = [start_run(stub, "outage", run_input()) for _ in range(RUNS)]
    assert_eventually(
        lambda: any(status_name(get_run(stub, r).status) == "RUNNING" for r in run_ids),
        message="runs are in flight",
    )
    assert control_plane.process is not None
    log_before = len(control_plane.process.stderr().splitlines())

    cluster.stop("fast")
    stopped = time.monotonic()
    start = ws.StartRunRequest(
        workflow_name="outage", input=json_payload(run_input()), request_id="during-outage"
    )
    assert refused_code(lambda: stub.StartRun(start, timeout=CALL_TIMEOUT)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    get = ws.GetRunRequest(run_id=run_ids[0])
    assert refused_code(lambda: stub.GetRun(get, timeout=CALL_TIMEOUT)) == (
        grpc.StatusCode.UNAVAILABLE
    )
    # The outage itself is the one wait of fixed length.
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
    cluster.start()
    back = time.monotonic()

    assert_eventually(
        lambda: "database back after" in control_plane.process.stderr(),  # type: ignore[union-attr]
        message="the control plane notices the database is back",
    )
    noticed = time.monotonic() - back
    retried = stub.StartRun(start, timeout=CALL_TIMEOUT).run_id
    for run_id in [*run_ids, retried]:
        wait_for_status(stub, run_id, "COMPLETED")

    lines = control_plane.process.stderr().splitlines()[log_before:]
    about_outage = "\n".join(lines)
    assert len(lines) < MAX_LOG_LINES, about_outage
    assert "Traceback" not in about_outage, about_outage
    assert any("database unreachable since" in line for line in lines), about_outage
    assert noticed < RESUME_SECONDS, f"work resumed {noticed:.1f} s after the database"
    # What the worker reported while the database was away was kept and recorded once it
    # was back, its heartbeats before any lease was judged: no attempt had to run again.
    for run_id in run_ids:
        assert events_of(history(stub, run_id), "ATTEMPT_LOST") == [], run_id
