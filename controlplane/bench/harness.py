"""`surefoot bench`: starts the processes, runs the modes asked for, prints one JSON object.

It starts its own control plane (a subprocess on the given database) and K worker processes,
registers a 3-step no-op workflow under a fresh name, and then runs, in this order:

- the open loop (open_loop.py) when `runs` is given or no closed-loop setting is: N runs
  started at once, the throughput figure of earlier versions, whose keys stay at the top
  level of the JSON object;
- one closed-loop setting (closed_loop.py) per `in_flight` value, under "closed_loop";
- with `restart`, the restart gap (restart.py), as "restart_gap_ms".

Modes share the processes, one after the other: each ends with no run in flight, so none
leaves work for the next. Progress goes to stderr; the last stdout line is the JSON object.

`--tls` serves over TLS with a throwaway CA (made with openssl) and `--auth` gives the server
an auth file holding one generated token that the workers and the bench's client present, so
that what TLS and authentication cost shows against a run without them. Without `--auth` the
server runs with `--no-auth`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.bench.closed_loop import measure_setting
from controlplane.bench.open_loop import measure_open_loop
from controlplane.bench.processes import (
    BenchControlPlane,
    BenchError,
    LoggedProcess,
    Security,
    cpu_seconds,
    start_worker,
)
from controlplane.bench.report import CpuMeter
from controlplane.bench.restart import measure_restart
from controlplane.bench.workload import CLIENT_CHANNEL_OPTIONS, Authenticated, definition
from controlplane.cli.channels import Connection
from controlplane.store.database import masked

DEFAULT_RUNS = 1000
DEFAULT_SECONDS = 10.0


def run_bench(
    database_url: str,
    runs: int | None = None,
    workers: int = 1,
    tls: bool = False,
    auth: bool = False,
    in_flight: Sequence[int] = (),
    follow: Sequence[str] = ("wait", "watch"),
    seconds: float = DEFAULT_SECONDS,
    restart: bool = False,
) -> int:
    """Run the benchmark; the exit code for the CLI.

    Args:
        runs: runs of the open loop (DEFAULT_RUNS when None and it runs).
        in_flight: one closed-loop setting per value; without any, the open loop runs.
        follow: how the closed loop learns a run ended ("wait": StartRun's wait_seconds;
            "watch": a WatchRun stream); each setting is measured once per mode.
        seconds: measured window of each closed-loop setting, after its warm-up.
        restart: measure the gap a control-plane restart leaves, after the other modes.
    """
    with tempfile.TemporaryDirectory(prefix="surefoot-bench-") as scratch:
        control_plane: BenchControlPlane | None = None
        worker_processes: list[LoggedProcess] = []
        try:
            security = Security.make(Path(scratch), tls=tls, auth=auth)
            control_plane = BenchControlPlane(database_url, Path(scratch), security)
            control_plane.start()
            connection = security.connection(control_plane.address)
            for index in range(workers):
                worker_processes.append(start_worker(connection, Path(scratch), index))
            meter = CpuMeter(
                control_plane.cpu_seconds,
                lambda: sum(cpu_seconds(p.pid) for p in worker_processes),
            )
            plan = _Plan(
                open_loop=runs is not None or not in_flight,
                runs=runs or DEFAULT_RUNS,
                in_flight=tuple(in_flight),
                follow=tuple(follow),
                seconds=seconds,
                restart=restart,
            )
            result = asyncio.run(_measure(connection, plan, workers, control_plane, meter))
            result["tls"], result["auth"] = tls, auth
            used = meter.read()
            result["cpu_seconds"] = {
                "control_plane": round(used.control_plane, 2),
                "workers": round(used.workers, 2),
            }
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for process in worker_processes:
                process.stop()
            if control_plane is not None and control_plane.process is not None:
                control_plane.process.stop()
    result["database"] = masked(database_url)
    print(json.dumps(result), flush=True)
    return 0


@dataclass(frozen=True)
class _Plan:
    """The modes one bench runs, in order."""

    open_loop: bool
    runs: int
    in_flight: tuple[int, ...]
    follow: tuple[str, ...]
    seconds: float
    restart: bool


async def _measure(
    connection: Connection,
    plan: _Plan,
    workers: int,
    control_plane: BenchControlPlane,
    meter: CpuMeter,
) -> dict[str, Any]:
    result: dict[str, Any] = {"workers": workers}
    async with connection.aio_channel(CLIENT_CHANNEL_OPTIONS) as channel:
        stub = Authenticated(workflow_service_pb2_grpc.WorkflowServiceStub(channel), connection)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        await stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=definition(name)))
        if plan.open_loop:
            result |= await measure_open_loop(stub, name, plan.runs, workers)
        if plan.in_flight:
            result["closed_loop"] = [
                await measure_setting(stub, name, n, plan.seconds, meter, follow)
                for n in plan.in_flight
                for follow in plan.follow
            ]
        if plan.restart:
            result |= await measure_restart(stub, name, control_plane)
    return result
