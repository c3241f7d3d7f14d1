"""`surefoot bench`: checkpointed steps per second through real processes.

It starts its own control plane (a subprocess on the given database) and K worker processes,
registers a 3-step no-op workflow under a fresh name, starts N runs as fast as the control
plane accepts them, waits for all of them to complete, and prints one JSON object on its last
line. Step latency is read back from history: from STEP_SCHEDULED to ATTEMPT_COMPLETED, i.e.
from the step being scheduled to its result being durable.

`--tls` serves over TLS with a throwaway CA (made with openssl) and `--auth` gives the server
an auth file holding one generated token that the workers and the bench's client present, so
that what TLS and authentication cost shows against a run without them. Without `--auth` the
server runs with `--no-auth`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from surefoot.v1 import common_pb2, definition_pb2, run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.auth.tokens import new_token, token_hash
from controlplane.cli.channels import Connection
from controlplane.store.database import masked
from controlplane.throwaway_certs import OpensslError, make_tls_files

STEPS = 3
START_CONCURRENCY = 200
# No-op async steps: a wide credit window keeps the pipeline full while a batch commits.
WORKER_CONCURRENCY = 1000
LATENCY_SAMPLE_RUNS = 300
READY_TIMEOUT = 60.0


def run_bench(
    database_url: str, runs: int = 1000, workers: int = 1, tls: bool = False, auth: bool = False
) -> int:
    """Run the benchmark; the exit code for the CLI."""
    with tempfile.TemporaryDirectory(prefix="surefoot-bench-") as scratch:
        processes: list[subprocess.Popen[bytes]] = []
        try:
            security = _Security.make(Path(scratch), tls=tls, auth=auth)
            address = _start_server(database_url, Path(scratch), processes, security)
            connection = security.connection(address)
            for index in range(workers):
                _start_worker(connection, Path(scratch), index, processes)
            result = asyncio.run(_measure(connection, runs, workers))
            result["tls"], result["auth"] = tls, auth
            result["cpu_seconds"] = {
                "control_plane": _cpu_seconds(processes[0].pid),
                "workers": round(sum(_cpu_seconds(p.pid) for p in processes[1:]), 2),
            }
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
    result["database"] = masked(database_url)
    print(json.dumps(result), flush=True)
    return 0


class BenchError(Exception):
    pass


class _Security:
    """The server options and the client connection of a bench run's TLS and auth modes."""

    def __init__(self, server_args: list[str], tls_ca: str | None, token: str) -> None:
        self.server_args = server_args
        self.tls_ca = tls_ca
        self.token = token

    @classmethod
    def make(cls, scratch: Path, tls: bool, auth: bool) -> _Security:
        args: list[str] = []
        tls_ca = None
        if tls:
            try:
                files = make_tls_files(scratch / "tls")
            except OpensslError as exc:
                raise BenchError(f"--tls: {exc}") from exc
            args += ["--tls-cert", str(files.server.cert), "--tls-key", str(files.server.key)]
            tls_ca = str(files.ca.cert)
        token = ""
        if auth:
            token = new_token()
            auth_file = scratch / "auth.yaml"
            # Admin everywhere: the bench registers, starts, reads and works in one credential.
            entry = {"principal": "bench", "namespaces": {"*": ["admin"]}}
            auth_file.write_text(json.dumps({"tokens": {token_hash(token): entry}}))
            args += ["--auth-file", str(auth_file)]
        else:
            args.append("--no-auth")
        return cls(args, tls_ca, token)

    def connection(self, address: str) -> Connection:
        # The server certificate names localhost and 127.0.0.1, which is where it listens.
        return Connection(address=address, token=self.token, tls_ca=self.tls_ca)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux), 0.0 where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "controlplane.cli.main", *args]


def _start_server(
    url: str, scratch: Path, processes: list[subprocess.Popen[bytes]], security: _Security
) -> str:
    log = scratch / "server.out"
    process = subprocess.Popen(
        _command("server", "--database-url", url, "--listen", "127.0.0.1:0", *security.server_args),
        stdout=log.open("wb"),
        stderr=(scratch / "server.err").open("wb"),
    )
    processes.append(process)
    line = _wait_for_line(process, log, re.compile(r"listening on (\S+)"))
    print(f"control plane at {line.group(1)} (pid {process.pid})", file=sys.stderr)
    return line.group(1)


def _start_worker(
    connection: Connection, scratch: Path, index: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    log = scratch / f"worker-{index}.out"
    process = subprocess.Popen(
        _command(
            "worker",
            "controlplane.bench_steps",
            "--address",
            connection.address,
            "--concurrency",
            str(WORKER_CONCURRENCY),
        ),
        stdout=log.open("wb"),
        stderr=(scratch / f"worker-{index}.err").open("wb"),
        # The token and the CA reach the worker as the SDK reads them: from the environment.
        env=os.environ | connection.environment() | {"PYTHONUNBUFFERED": "1"},
    )
    processes.append(process)
    _wait_for_line(process, log, re.compile(r"connected"))
    print(f"worker {index} connected (pid {process.pid})", file=sys.stderr)


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str]) -> Any:
    what = str(process.args[3])  # type: ignore[index]
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        found = pattern.search(log.read_text(errors="replace"))
        if found:
            return found
        if process.poll() is not None:
            err = log.with_suffix(".err")
            tail = err.read_text(errors="replace").strip().splitlines()[-3:] if err.exists() else []
            raise BenchError(f"{what} exited with {process.returncode}: {tail}")
        time.sleep(0.05)
    raise BenchError(f"{what} did not become ready within {READY_TIMEOUT:.0f} s")


def _definition(name: str) -> definition_pb2.WorkflowDefinition:
    nodes = []
    for index in range(STEPS):
        nodes.append(
            definition_pb2.Node(
                id=f"s{index + 1}",
                next=f"s{index + 2}" if index + 1 < STEPS else "",
                task=definition_pb2.TaskNode(
                    step_type="bench-noop", idempotency=common_pb2.IDEMPOTENCY_NATURAL
                ),
            )
        )
    return definition_pb2.WorkflowDefinition(name=name, version="1", nodes=nodes)


async def _measure(connection: Connection, runs: int, workers: int) -> dict[str, Any]:
    async with connection.aio_channel() as channel:
        stub = _Authenticated(workflow_service_pb2_grpc.WorkflowServiceStub(channel), connection)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        await stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=_definition(name)))
        gate = asyncio.Semaphore(START_CONCURRENCY)
        run_ids: list[str] = []

        async def start(index: int) -> None:
            async with gate:
                response = await stub.StartRun(
                    ws.StartRunRequest(
                        workflow_name=name,
                        input=common_pb2.Payload(encoding="json/plain", data=b"{}"),
                        request_id=f"{name}-{index}",
                    )
                )
                run_ids.append(response.run_id)

        began = time.perf_counter()
        await asyncio.gather(*(start(i) for i in range(runs)))
        started = time.perf_counter()
        while True:
            listing = await stub.ListDefinitions(ws.ListDefinitionsRequest(name=name))
            if listing.definitions[0].runs_in_flight == 0:
                break
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - began
        latencies = await _latencies(stub, run_ids[:LATENCY_SAMPLE_RUNS])
        incomplete = await _count_not_completed(stub, name)
    if incomplete:
        raise BenchError(f"{incomplete} runs did not complete")
    return {
        "runs": runs,
        "steps": runs * STEPS,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "start_seconds": round(started - began, 3),
        "runs_per_second": round(runs / elapsed, 1),
        "steps_per_second": round(runs * STEPS / elapsed, 1),
        "step_latency_ms": _percentiles(latencies),
        "latency_sample_steps": len(latencies),
    }


class _Authenticated:
    """A stub whose every call carries the connection's token."""

    def __init__(self, stub: Any, connection: Connection) -> None:
        self._stub = stub
        self._metadata = connection.metadata

    def __getattr__(self, name: str) -> Any:
        rpc = getattr(self._stub, name)

        def call(request: Any) -> Any:
            return rpc(request, metadata=self._metadata)

        return call


async def _latencies(stub: Any, run_ids: list[str]) -> list[float]:
    latencies: list[float] = []
    for run_id in run_ids:
        history = await stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id))
        scheduled: dict[tuple[str, int], datetime] = {}
        for event in history.events:
            key = (event.node_id, event.attempt)
            if event.type == run_pb2.EVENT_TYPE_STEP_SCHEDULED:
                scheduled[key] = event.time.ToDatetime()
            elif event.type == run_pb2.EVENT_TYPE_ATTEMPT_COMPLETED and key in scheduled:
                delta = event.time.ToDatetime() - scheduled[key]
                latencies.append(delta.total_seconds() * 1000)
    return latencies


async def _count_not_completed(stub: Any, name: str) -> int:
    statuses = [s for s in run_pb2.RunStatus.values() if s not in (0, run_pb2.RUN_STATUS_COMPLETED)]
    response = await stub.ListRuns(
        ws.ListRunsRequest(workflow_name=name, statuses=statuses, page_size=1000)
    )
    return len(response.runs)


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2)}
