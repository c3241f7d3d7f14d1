"""Acceptance: StartRun twice with the same request id returns the same run, not two.

A client that retries StartRun after a timeout must not start a second run; both the
generated client and `surefoot runs start --request-id` rely on it.
"""

from __future__ import annotations

from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import json_payload, list_runs, register, wait_for_status
from tests.support.workflows import three_steps


def test_start_run_twice_with_one_request_id_returns_the_same_run(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("once"))
    worker()

    def start(request_id: str) -> ws.StartRunResponse:
        request = ws.StartRunRequest(
            workflow_name="once", input=json_payload({"trail": []}), request_id=request_id
        )
        return stub.StartRun(request, timeout=30)

    first = start("order-7")
    again = start("order-7")
    other = start("order-8")

    assert first.created and not again.created and other.created
    assert again.run_id == first.run_id
    assert other.run_id != first.run_id
    assert first.workflow_version == again.workflow_version == "1"
    assert sorted(r.id for r in list_runs(stub)) == sorted([first.run_id, other.run_id])
    # Once more after the run completed: still that run, and it ran once.
    wait_for_status(stub, first.run_id, "COMPLETED")
    assert start("order-7").run_id == first.run_id
    assert [e.node_id for e in execution_log.started(first.run_id)] == ["a", "b", "c"]

    # The CLI: the same id twice prints the same run id; the second says it was a repeat.
    address = ("--address", control_plane.address)
    cli_first = run_cli("runs", "start", "once", "--input", "{}", "--request-id", "cli-1", *address)
    cli_again = run_cli("runs", "start", "once", "--input", "{}", "--request-id", "cli-1", *address)
    assert cli_first.returncode == 0, cli_first.stderr
    assert cli_again.returncode == 0, cli_again.stderr
    run_id = cli_first.stdout.strip()
    assert cli_again.stdout.strip() == run_id
    assert "already started" in cli_again.stderr
    assert run_id not in (first.run_id, other.run_id)
    assert len(list_runs(stub)) == 3
