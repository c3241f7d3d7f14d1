"""The README's first command: `surefoot dev` runs everything locally, stops cleanly on
Ctrl-C, and resumes the runs in flight when started again on the same data directory."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import grpc
from surefoot.v1 import run_pb2, workflow_service_pb2_grpc

from tests.support.eventually import assert_eventually
from tests.support.processes import (
    ManagedProcess,
    ProcessRegistry,
    free_port,
    port_is_free,
    run_cli,
    surefoot_command,
)
from tests.support.runs import events_of, get_run, history

BANNER = re.compile(r"Surefoot dev control plane listening on (\S+)")


def start_dev(processes: ProcessRegistry, data_dir: Path, port: int) -> ManagedProcess:
    assert_eventually(lambda: port_is_free(port), message=f"port {port} is free")
    dev = processes.start(
        "dev", surefoot_command("dev", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port}")
    )
    dev.wait_for_stdout(BANNER)
    return dev


def cli_json(*args: str) -> dict[str, object]:
    result = run_cli(*args, "--json")
    assert result.returncode == 0, result
    document: dict[str, object] = json.loads(result.stdout)
    return document


def worker_pid(worker_id: str) -> int:
    """Worker ids are host:pid:random; dev mode's worker lives in the dev process."""
    return int(worker_id.split(":")[-2])


def test_dev_mode_runs_orders_stops_on_ctrl_c_and_resumes(
    processes: ProcessRegistry, tmp_path: Path
) -> None:
    data_dir, port = tmp_path / "dev-data", free_port()
    address = ("--address", f"127.0.0.1:{port}")
    first = start_dev(processes, data_dir, port)
    assert "orders@1 (registered)" in first.stdout()

    order = json.dumps({"order_id": "A-1", "amount": 42})
    quick = run_cli("runs", "start", "orders", "--input", order, *address)
    assert quick.returncode == 0, quick
    quick_id = quick.stdout.strip()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
    assert_eventually(
        lambda: get_run(stub, quick_id).status == run_pb2.RUN_STATUS_COMPLETED,
        message="the quick order completes",
    )
    shown = cli_json("runs", "show", quick_id, *address)
    assert shown["run"]["status"] == "RUN_STATUS_COMPLETED"  # type: ignore[index]

    # An order whose reserve and charge steps take seconds: stop dev mode during reserve.
    slow_order = json.dumps({"order_id": "A-2", "amount": 7, "sleep_seconds": 3})
    slow = run_cli("runs", "start", "orders", "--input", slow_order, *address)
    assert slow.returncode == 0, slow
    slow_id = slow.stdout.strip()

    def reserve_is_running() -> bool:
        steps = {s.node_id: s.status for s in get_run(stub, slow_id).steps}
        return steps.get("reserve") == run_pb2.STEP_STATUS_RUNNING

    assert_eventually(reserve_is_running, message="the slow order's reserve step runs")
    channel.close()
    assert first.stop(signal.SIGINT) == 0, first.logs()
    assert "surefoot dev stopped" in first.stdout()

    second = start_dev(processes, data_dir, port)
    assert "orders@1 (unchanged)" in second.stdout()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
    assert_eventually(
        lambda: get_run(stub, slow_id).status == run_pb2.RUN_STATUS_COMPLETED,
        message="the slow order completes after the restart",
    )

    # The run spanned both processes: reserve ran in the first; the draining worker took
    # nothing new, so charge and ship ran in the second.
    events = history(stub, slow_id)
    started_in = {
        e.node_id: worker_pid(e.data["worker_id"]) for e in events_of(events, "ATTEMPT_STARTED")
    }
    assert started_in["reserve"] == first.pid
    assert started_in["charge"] == started_in["ship"] == second.pid
    # Each step ran once: Ctrl-C let reserve finish and left nothing leased behind.
    assert [(e.node_id, e.attempt) for e in events_of(events, "ATTEMPT_STARTED")] == [
        ("reserve", 1),
        ("charge", 1),
        ("ship", 1),
    ], events
    listed = run_cli("runs", "list", *address)
    assert listed.returncode == 0 and quick_id in listed.stdout and slow_id in listed.stdout
    channel.close()
    assert second.stop(signal.SIGINT) == 0, second.logs()
