"""`surefoot runs trace ID` draws the run's waterfall from its history, and `--otlp` sends a
run that ended before tracing was on to the collector as the same trace the control plane
would have emitted live: root, attempts and waits, with the span ids its worker was given."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.support.approval_auth import OPERATOR, AuthControlPlane
from tests.support.processes import ProcessRegistry, StartWorker, run_cli
from tests.support.runs import get_run, register, start_run, wait_for_status
from tests.telemetry.approved import (
    TRACED_STEPS,
    approve,
    approved_workflow,
    assert_one_trace,
    auth_control_plane,
    run_spans,
)
from tests.telemetry.collector import SpanStore
from tests.telemetry.test_tracing import _seen_by_worker, _span_id

# The processes of these tests trace nothing: the runs ended "before tracing was on".
TRACING_OFF = {"OTEL_SDK_DISABLED": "true"}


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    yield from auth_control_plane(database_url, processes, tmp_path)


def cli(plane: AuthControlPlane, *args: str, **env: str) -> tuple[int, str, str]:
    # Any: run_cli's keywords are its environment, and its timeout.
    variables: dict[str, Any] = {"SUREFOOT_TOKEN": OPERATOR, "OTEL_SDK_DISABLED": "false", **env}
    done = run_cli(*args, "--address", plane.address, **variables)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("otel_env", [TRACING_OFF])
@pytest.mark.parametrize("otlp_protocol", ["grpc", "http/protobuf"])
def test_runs_trace_draws_the_run_and_reexports_its_spans(
    control_plane: AuthControlPlane,
    worker: StartWorker,
    collector: SpanStore,
    traced_steps_log: Path,
    otlp_protocol: str,
) -> None:
    stub = control_plane.stub
    register(stub, approved_workflow())
    worker(module=TRACED_STEPS)
    run_id = start_run(stub, "approved", {"a": {"fail_times": 1}, "c": {}})
    approve(stub, run_id)
    wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id

    code, out, err = cli(control_plane, "runs", "trace", run_id, "--width", "40")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"run {run_id}  approved@1  trace {trace_id}")
    rows = {line.split()[0]: line.split() for line in lines[2:-1]}
    assert [rows[node][1] for node in ("(run)", "a", "ok", "c")] == [
        "COMPLETED",
        "COMPLETED",
        "APPROVED",
        "COMPLETED",
    ]
    assert "╌" in rows["a"][3]  # the backoff between a's two attempts
    assert "backoff" in lines[-1] and "approval" in lines[-1]  # the legend

    code, out, err = cli(control_plane, "runs", "trace", run_id, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["trace_id"] == trace_id
    kinds = sorted(span["kind"] for span in document["spans"])
    assert kinds == ["attempt", "attempt", "attempt", "run", "wait", "wait"]

    assert run_spans(collector, trace_id) == []  # tracing was off while it ran
    endpoint = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": otlp_protocol,
    }
    code, out, err = cli(control_plane, "runs", "trace", run_id, "--otlp", **endpoint)
    assert code == 0, err
    assert out.strip() == f"exported 6 span(s) of run {run_id} (trace {trace_id})"
    assert_one_trace(collector, stub, run_id)
    # The attempts carry the span ids their worker was given, as live spans do.
    seen = _seen_by_worker(traced_steps_log, run_id)
    attempts = {s.span_id for s in run_spans(collector, trace_id) if s.name.startswith("step ")}
    assert attempts == {_span_id(entry["traceparent"]) for entry in seen.values()}


@pytest.mark.parametrize("otel_env", [TRACING_OFF])
def test_runs_trace_otlp_refuses_a_run_still_going_or_no_endpoint(
    control_plane: AuthControlPlane, collector: SpanStore
) -> None:
    stub = control_plane.stub
    register(stub, approved_workflow())
    run_id = start_run(stub, "approved", {"a": {}, "c": {}})  # no worker: it never ends

    code, out, err = cli(control_plane, "runs", "trace", run_id, "--otlp")
    assert (code, out) == (2, "")
    assert err.startswith("error: --otlp needs OTEL_EXPORTER_OTLP_ENDPOINT")

    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint}
    code, out, err = cli(control_plane, "runs", "trace", run_id, "--otlp", **endpoint)
    assert (code, out) == (2, "")
    assert err == f"error: run {run_id} has not ended: its spans are exported when it ends " + (
        "(with OTEL_EXPORTER_OTLP_ENDPOINT set on the control plane)\n"
    )
    # Nothing of the run was exported: only the CLI's own calls, as client spans.
    assert {(s.service, s.kind) for s in collector.spans()} <= {
        ("surefoot-cli", trace_pb2.Span.SPAN_KIND_CLIENT)
    }
