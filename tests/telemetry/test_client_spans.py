"""The console's and the worker SDK's client calls are spans when export is configured, and
the trace context goes with them: the control plane's server span of the call is their child."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from opentelemetry.proto.trace.v1 import trace_pb2

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.telemetry.collector import CollectedSpan, SpanStore

LIST_RUNS = "/surefoot.v1.WorkflowService/ListRuns"

CONSOLE_CALL = """
import asyncio
from console.client import ControlPlane
from controlplane import telemetry

async def main():
    plane = ControlPlane(ADDRESS, "default")
    await plane.list_runs([])
    plane.close()

asyncio.run(main())
telemetry.shutdown()
"""

SDK_CALL = """
from opentelemetry import trace
from surefoot.v1 import workflow_service_pb2 as ws, workflow_service_pb2_grpc
from surefoot_worker._channel import ChannelSettings

channel = ChannelSettings().checked().open_blocking(ADDRESS)
workflow_service_pb2_grpc.WorkflowServiceStub(channel).ListRuns(ws.ListRunsRequest(), timeout=10)
channel.close()
trace.get_tracer_provider().shutdown()
"""


def run_python(processes: ProcessRegistry, code: str, address: str) -> None:
    source = textwrap.dedent(code).replace("ADDRESS", repr(address))
    done = subprocess.run(
        [sys.executable, "-c", source],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def client_and_server(collector: SpanStore, service: str) -> tuple[CollectedSpan, CollectedSpan]:
    spans = collector.spans()
    clients = [s for s in spans if s.service == service and s.name == LIST_RUNS]
    assert len(clients) == 1, clients
    servers = [
        s
        for s in spans
        if s.service == "surefoot-control-plane"
        and s.name == LIST_RUNS
        and s.trace_id == clients[0].trace_id
    ]
    assert len(servers) == 1, servers
    return clients[0], servers[0]


def assert_traced_call(collector: SpanStore, service: str) -> None:
    client, server = assert_eventually(
        lambda: client_and_server(collector, service), message=f"{service}'s ListRuns spans"
    )
    assert client.kind == trace_pb2.Span.SPAN_KIND_CLIENT
    assert server.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert server.parent_span_id == client.span_id


def test_the_consoles_calls_are_client_spans_continued_by_the_server(
    control_plane: ControlPlane, processes: ProcessRegistry, collector: SpanStore
) -> None:
    run_python(processes, CONSOLE_CALL, control_plane.address)
    assert_traced_call(collector, "surefoot-console")


def test_the_worker_sdks_client_calls_are_client_spans_continued_by_the_server(
    control_plane: ControlPlane, processes: ProcessRegistry, collector: SpanStore
) -> None:
    run_python(processes, SDK_CALL, control_plane.address)
    assert_traced_call(collector, "surefoot-worker")


def test_the_clis_calls_are_client_spans_continued_by_the_server(
    control_plane: ControlPlane, processes: ProcessRegistry, collector: SpanStore
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "controlplane.cli.main", "runs", "list"]
        + ["--address", control_plane.address],
        env=processes.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert_traced_call(collector, "surefoot-cli")
