"""A run is one trace with a root span from its start to its end, its attempts and its waits
(an approval, a retry's backoff) as children of the root, over OTLP/gRPC and OTLP/HTTP alike,
and also when the control plane was killed mid-wait and another one finished the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.approval_auth import AuthControlPlane
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry, StartWorker
from tests.support.runs import get_run, register, start_run, wait_for_status
from tests.telemetry.approved import (
    TRACED_STEPS,
    approve,
    approved_workflow,
    assert_one_trace,
    auth_control_plane,
    run_spans,
)
from tests.telemetry.collector import CollectedSpan, SpanStore


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    yield from auth_control_plane(database_url, processes, tmp_path)


@pytest.mark.parametrize("otlp_protocol", ["grpc", "http/protobuf"])
def test_a_run_is_one_trace_of_root_attempt_and_wait_spans(
    control_plane: ControlPlane, worker: StartWorker, collector: SpanStore, otlp_protocol: str
) -> None:
    assert collector.protocol == otlp_protocol
    stub = control_plane.stub
    register(stub, approved_workflow())
    worker(module=TRACED_STEPS)
    run_id = start_run(stub, "approved", {"a": {"fail_times": 1}, "c": {}})
    approve(stub, run_id)
    wait_for_status(stub, run_id, "COMPLETED")
    assert_one_trace(collector, stub, run_id)

    # The worker's handler spans arrive over the same protocol, each a child of its attempt.
    trace_id = get_run(stub, run_id).trace_id
    attempts = {
        s.span_id: s
        for s in collector.spans()
        if s.trace_id == trace_id and s.name.startswith("step ")
    }

    def handlers() -> list[CollectedSpan] | None:
        found = [
            s
            for s in collector.spans()
            if s.trace_id == trace_id
            and s.service == "surefoot-worker"
            and s.name.startswith("surefoot.step ")
        ]
        return found if len(found) == len(attempts) else None

    spans = assert_eventually(handlers, message="the worker's handler spans, one per attempt")
    assert {s.parent_span_id for s in spans} == set(attempts)


@pytest.mark.parametrize("otlp_protocol", ["grpc"])
def test_the_trace_survives_a_control_plane_killed_during_the_approval_wait(
    control_plane: ControlPlane, worker: StartWorker, collector: SpanStore
) -> None:
    stub = control_plane.stub
    register(stub, approved_workflow())
    worker(module=TRACED_STEPS)
    run_id = start_run(stub, "approved", {"a": {"fail_times": 1}, "c": {}})
    wait_for_status(stub, run_id, "WAITING")
    trace_id = get_run(stub, run_id).trace_id
    assert_eventually(
        lambda: len([s for s in run_spans(collector, trace_id) if s.name != "run approved@1"]) == 3,
        message="a's attempts and backoff, exported before the crash",
    )
    control_plane.kill()  # SIGKILL: nothing of the wait is kept but the database
    control_plane.restart()
    approve(control_plane.stub, run_id)
    wait_for_status(control_plane.stub, run_id, "COMPLETED")
    assert_one_trace(collector, control_plane.stub, run_id)
