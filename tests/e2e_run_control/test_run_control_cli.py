"""`surefoot runs pause|resume|at|fork` against a real control plane and worker."""

from __future__ import annotations

import json

from tests.e2e_run_control.control_support import four_steps
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import get_run, register, start_run, wait_for_status


def test_pause_why_resume_at_and_fork_from_the_cli(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    address = ("--address", control_plane.address)
    register(stub, four_steps("cli-control"))
    run_id = start_run(stub, "cli-control", {"trail": []})

    paused = run_cli("runs", "pause", run_id, "--reason", "vendor outage", *address)
    assert paused.returncode == 0 and f"paused run {run_id}" in paused.stdout, paused
    why = run_cli("runs", "why", run_id, *address)
    assert why.returncode == 0 and why.stdout.startswith("paused: 'a' waits: run paused by "), why
    assert "vendor outage" in why.stdout
    shown = run_cli("runs", "show", run_id, *address)
    assert "vendor outage" in shown.stdout, shown
    again = run_cli("runs", "pause", run_id, *address)
    assert again.returncode != 0 and "already paused" in again.stderr, again

    worker()
    resumed = run_cli("runs", "resume", run_id, *address)
    assert resumed.returncode == 0 and f"resumed run {run_id}" in resumed.stdout, resumed
    wait_for_status(stub, run_id, "COMPLETED")

    # 1 RUN_STARTED, 2 STEP_SCHEDULED a, 3 RUN_PAUSED: no worker was there to start a.
    at = run_cli("runs", "at", run_id, "3", "-o", "json", *address)
    assert at.returncode == 0, at
    snapshot = json.loads(at.stdout)["snapshot"]
    assert snapshot["seq"] in (3, "3") and snapshot["event"]["type"] == "EVENT_TYPE_RUN_PAUSED"
    table = run_cli("runs", "at", run_id, "1", *address)
    assert table.returncode == 0 and "RUNNING" in table.stdout, table
    beyond = run_cli("runs", "at", run_id, "10000", *address)
    assert beyond.returncode != 0 and "beyond" in beyond.stderr, beyond

    forked = run_cli("runs", "fork", run_id, "--from", "c", "--comment", "again", *address)
    assert forked.returncode == 0 and "reused: a, b" in forked.stderr, forked
    fork_id = forked.stdout.strip()
    wait_for_status(stub, fork_id, "COMPLETED")
    assert [e.node_id for e in execution_log.started(fork_id)] == ["c", "d"]
    assert [f.run_id for f in get_run(stub, run_id).forks] == [fork_id]
    parent = run_cli("runs", "show", run_id, *address)
    assert f"{fork_id} (from c)" in parent.stdout, parent
