"""Every run is one OpenTelemetry trace: each attempt a span with the run's trace id, the
worker's handler spans under it, and the application's own spans under those."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from controlplane.store.run_batch import traceparent_for
from controlplane.tracing.spans import root_span_id
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import get_run, register, start_run, wait_for_status
from tests.support.workflows import task_node
from tests.telemetry.collector import CollectedSpan, SpanStore

TRACED_STEPS = Path(__file__).with_name("traced_steps.py")
CONTROL_PLANE = "surefoot-control-plane"
WORKER = "surefoot-worker"


def _three_traced_steps() -> Any:
    return definition_from_dict(
        {
            "name": "traced",
            "version": "3",
            "nodes": [
                task_node("a", "b", "input.a", "traced-async"),
                task_node("b", "c", "input.b", "traced-sync"),
                task_node("c", None, "input.c", "traced-async"),
            ],
        }
    )


def _seen_by_worker(path: Path, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    if not path.exists():
        return {}
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return {(e["node_id"], e["attempt"]): e for e in lines if e["run_id"] == run_id}


def _span_id(traceparent: str) -> str:
    return traceparent.split("-")[2]


def test_a_run_is_one_trace_of_attempt_spans_with_the_workers_spans_nested(
    control_plane: ControlPlane,
    worker: StartWorker,
    collector: SpanStore,
    traced_steps_log: Path,
) -> None:
    stub = control_plane.stub
    register(stub, _three_traced_steps())
    worker(module=TRACED_STEPS)
    run_id = start_run(stub, "traced", {"a": {}, "b": {"fail_times": 1}, "c": {}})
    run = wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id
    assert len(trace_id) == 32

    # b failed once, then succeeded: four attempts, each seen by the worker with a
    # traceparent in the run's trace.
    seen = _seen_by_worker(traced_steps_log, run_id)
    assert sorted(seen) == [("a", 1), ("b", 1), ("b", 2), ("c", 1)]
    for entry in seen.values():
        assert entry["traceparent"] == traceparent_for(trace_id, entry["task_id"])

    def attempt_spans() -> dict[str, CollectedSpan]:
        spans = [
            s
            for s in collector.spans()
            if s.service == CONTROL_PLANE
            and s.attributes.get("surefoot.run_id") == run_id
            and s.name.startswith("step ")
        ]
        assert len(spans) == 4, [s.name for s in spans]
        return {s.span_id: s for s in spans}

    def handler_spans() -> list[CollectedSpan]:
        spans = [
            s
            for s in collector.spans()
            if s.service == WORKER
            and s.name.startswith("surefoot.step ")
            and s.attributes.get("surefoot.run_id") == run_id
        ]
        assert len(spans) == 4
        return spans

    attempts = assert_eventually(attempt_spans, message="the control plane's attempt spans")
    handlers = assert_eventually(handler_spans, message="the worker's handler spans")

    # Every attempt span is in the run's trace, with the span id the worker was given, a
    # child of the run's root span.
    assert {_span_id(e["traceparent"]) for e in seen.values()} == set(attempts)
    for span in attempts.values():
        assert span.trace_id == trace_id
        assert span.parent_span_id == root_span_id(trace_id)
        key = (span.attributes["surefoot.node_id"], span.attributes["surefoot.attempt"])
        assert span.span_id == _span_id(seen[key]["traceparent"])
        assert span.name == f"step {key[0]}"
        assert span.attributes["surefoot.workflow"] == "traced@3"
        assert span.attributes["surefoot.idempotency_key"] == f"{run_id}:{key[0]}"
        assert span.start_ns <= span.end_ns
    by_attempt = {
        (s.attributes["surefoot.node_id"], s.attributes["surefoot.attempt"]): s
        for s in attempts.values()
    }
    assert by_attempt[("b", 2)].attributes["surefoot.step_type"] == "traced-sync"
    failed = by_attempt[("b", 1)]
    assert failed.is_error
    assert failed.attributes["surefoot.outcome"] == "failed"
    assert failed.attributes["error.type"] == "DependencyDown"
    assert "the dependency is down" in failed.status_message
    for key in [("a", 1), ("b", 2), ("c", 1)]:
        assert not by_attempt[key].is_error
        assert by_attempt[key].attributes["surefoot.outcome"] == "completed"

    # The worker's handler spans are children of the attempt spans; the failing one is an
    # error too.
    for span in handlers:
        assert span.trace_id == trace_id
        parent = attempts[span.parent_span_id]
        assert parent.attributes["surefoot.node_id"] == span.attributes["surefoot.node_id"]
        assert parent.attributes["surefoot.attempt"] == span.attributes["surefoot.attempt"]
        assert span.is_error == parent.is_error

    # The application's own spans, in async and in sync (thread pool) handlers alike, nest
    # under the handler's span.
    handler_ids = {s.span_id for s in handlers}

    def user_spans() -> list[CollectedSpan]:
        spans = [
            s
            for s in collector.spans()
            if s.name.startswith("user work ") and s.trace_id == trace_id
        ]
        assert len(spans) == 4
        return spans

    for span in assert_eventually(user_spans, message="the handlers' own spans"):
        assert span.parent_span_id in handler_ids

    # The gRPC server continues the trace of a client that sends one (the CLI, the console,
    # the SDK when they trace); a call without one (this test's stub) starts no trace.
    client_trace, client_span = "ab" * 16, "cd" * 8
    stub.GetRun(
        ws.GetRunRequest(run_id=run_id),
        metadata=(("traceparent", f"00-{client_trace}-{client_span}-01"),),
        timeout=30,
    )

    def grpc_spans() -> list[CollectedSpan]:
        spans = [
            s
            for s in collector.spans()
            if s.service == CONTROL_PLANE and s.name.startswith("/surefoot.v1.WorkflowService/")
        ]
        assert [(s.name, s.trace_id, s.parent_span_id) for s in spans] == [
            ("/surefoot.v1.WorkflowService/GetRun", client_trace, client_span)
        ]
        return spans

    assert_eventually(grpc_spans, message="the traced call's server span, and only it")
    assert run.status  # the run itself is unaffected by tracing


def test_a_lost_attempt_is_an_error_span_with_the_span_id_its_worker_was_given(
    control_plane: ControlPlane,
    worker: StartWorker,
    collector: SpanStore,
    traced_steps_log: Path,
) -> None:
    stub = control_plane.stub
    register(stub, _three_traced_steps())
    doomed = worker(module=TRACED_STEPS)
    run_id = start_run(
        stub, "traced", {"a": {"sleep_seconds": 60, "sleep_attempts": 1}, "b": {}, "c": {}}
    )
    assert_eventually(
        lambda: ("a", 1) in _seen_by_worker(traced_steps_log, run_id),
        message="the first attempt of a started",
    )
    doomed.kill()  # SIGKILL mid-attempt: the control plane sees the stream close
    worker(module=TRACED_STEPS)
    wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id
    seen = _seen_by_worker(traced_steps_log, run_id)

    def lost_span() -> CollectedSpan:
        spans = [
            s
            for s in collector.spans()
            if s.service == CONTROL_PLANE
            and s.attributes.get("surefoot.run_id") == run_id
            and s.attributes.get("surefoot.node_id") == "a"
            and s.attributes.get("surefoot.attempt") == 1
        ]
        assert len(spans) == 1
        return spans[0]

    span = assert_eventually(lost_span, message="the lost attempt's span")
    assert span.trace_id == trace_id
    assert span.span_id == _span_id(seen[("a", 1)]["traceparent"])
    assert span.is_error
    assert span.attributes["surefoot.outcome"] == "lost"
    assert span.attributes["error.type"] == "AttemptLost"
