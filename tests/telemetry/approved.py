"""A workflow whose trace has every kind of span, the control plane that runs it (approvals
need an authenticated decider), and what its complete trace must look like."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from surefoot_worker.authoring import definition_from_dict

from controlplane.tracing.spans import root_span_id
from tests.support.approval_auth import CAROL, AuthControlPlane, write_auth_file
from tests.support.eventually import assert_eventually
from tests.support.processes import ProcessRegistry
from tests.support.runs import events_of, get_run, history
from tests.support.waits import decide, pending_approvals
from tests.support.workflows import task_node
from tests.telemetry.collector import CollectedSpan, SpanStore

TRACED_STEPS = Path(__file__).with_name("traced_steps.py")
CONTROL_PLANE = "surefoot-control-plane"
WORKER = "surefoot-worker"
# Spans' times are nanoseconds; history's are microseconds, and floats on the way.
SLACK_NS = 2_000_000


def auth_control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """A control plane that knows carol, who decides the approvals (with a bearer token): the
    `control_plane` fixture of the modules that use this workflow."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def approved_workflow() -> Any:
    """a (fails once: a retry's backoff) -> an approval -> c."""
    return definition_from_dict(
        {
            "name": "approved",
            "version": "1",
            "nodes": [
                task_node("a", "ok", "input.a", "traced-async"),
                {"id": "ok", "approval": {"title": "Ship?", "approvers": ["carol"]}, "next": "c"},
                task_node("c", None, "input.c", "traced-sync"),
            ],
        }
    )


def run_spans(collector: SpanStore, trace_id: str) -> list[CollectedSpan]:
    return [s for s in collector.spans() if s.service == CONTROL_PLANE and s.trace_id == trace_id]


def complete_trace(collector: SpanStore, trace_id: str) -> dict[str, CollectedSpan]:
    """The run's spans by name once all five have arrived (and no more)."""
    spans = run_spans(collector, trace_id)
    by_name = {s.name: s for s in spans}
    expected = {"run approved@1", "step a", "backoff a", "approval ok", "step c"}
    assert set(by_name) == expected and len(spans) == 6, sorted(s.name for s in spans)
    return by_name


def assert_one_trace(collector: SpanStore, stub: Any, run_id: str) -> None:
    trace_id = get_run(stub, run_id).trace_id
    spans = assert_eventually(
        lambda: complete_trace(collector, trace_id), message="the run's root, attempt, wait spans"
    )
    events = history(stub, run_id)
    root = spans["run approved@1"]
    assert root.parent_span_id == ""
    assert root.span_id == root_span_id(trace_id)
    assert root.attributes["surefoot.run_id"] == run_id
    assert root.attributes["surefoot.status"] == "COMPLETED"
    assert abs(root.start_ns - events[0].time * 1e9) < SLACK_NS
    assert abs(root.end_ns - events[-1].time * 1e9) < SLACK_NS
    # Every other span is a child of the root, within it.
    for span in run_spans(collector, trace_id):
        if span is not root:
            assert span.parent_span_id == root.span_id, span.name
            assert root.start_ns - SLACK_NS <= span.start_ns <= span.end_ns
            assert span.end_ns <= root.end_ns + SLACK_NS
    attempts = [s for s in run_spans(collector, trace_id) if s.name == "step a"]
    assert sorted(s.attributes["surefoot.outcome"] for s in attempts) == ["completed", "failed"]
    # The approval's wait lasted from its request to its decision.
    wait = spans["approval ok"]
    (requested,) = events_of(events, "APPROVAL_REQUESTED", "ok")
    (decided,) = events_of(events, "APPROVAL_DECIDED", "ok")
    assert abs(wait.start_ns - requested.time * 1e9) < SLACK_NS
    assert abs(wait.end_ns - decided.time * 1e9) < SLACK_NS
    assert wait.attributes["surefoot.wait"] == "approval"
    assert wait.attributes["surefoot.outcome"] == "approved"
    # The backoff lies between the failed attempt and the next one.
    backoff = spans["backoff a"]
    failed = next(s for s in attempts if s.attributes["surefoot.outcome"] == "failed")
    retried = next(s for s in attempts if s.attributes["surefoot.outcome"] == "completed")
    assert failed.end_ns - SLACK_NS <= backoff.start_ns < backoff.end_ns
    assert backoff.end_ns <= retried.start_ns + SLACK_NS
    assert backoff.attributes["surefoot.attempt"] == 2


def approve(stub: Any, run_id: str) -> None:
    approvals = assert_eventually(
        lambda: [a for a in pending_approvals(stub) if a.run_id == run_id] or None,
        message="the run's approval",
    )
    decide(stub, approvals[0].id, approve=True, token=CAROL)
