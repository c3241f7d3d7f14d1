"""A timer and an event wait are spans of the run's trace, from when the run began waiting to
when the wait ended, as history recorded them; `surefoot runs trace --json` derives the same
spans, ids and times from the history alone."""

from __future__ import annotations

import json
from typing import Any

from surefoot_worker.authoring import definition_from_dict

from controlplane.tracing.spans import root_span_id
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, run_cli
from tests.support.runs import events_of, get_run, history, register, start_run, wait_for_status
from tests.support.waits import send_event
from tests.telemetry.approved import CONTROL_PLANE, SLACK_NS
from tests.telemetry.collector import CollectedSpan, SpanStore


def napping_and_waiting() -> Any:
    return definition_from_dict(
        {
            "name": "patient",
            "version": "1",
            "nodes": [
                {"id": "nap", "sleep": {"seconds": 0.3}, "next": "payment"},
                {
                    "id": "payment",
                    "wait_event": {"event_name": "paid", "correlation_key": "input.order"},
                },
            ],
        }
    )


def three_spans(collector: SpanStore, trace_id: str) -> dict[str, CollectedSpan]:
    spans = [s for s in collector.spans() if s.service == CONTROL_PLANE and s.trace_id == trace_id]
    assert sorted(s.name for s in spans) == ["event payment", "run patient@1", "timer nap"]
    return {s.name: s for s in spans}


def test_a_timer_and_an_event_wait_are_spans_under_the_root(
    control_plane: ControlPlane, collector: SpanStore
) -> None:
    stub = control_plane.stub
    register(stub, napping_and_waiting())
    run_id = start_run(stub, "patient", {"order": "o-1"})
    assert_eventually(
        lambda: events_of(history(stub, run_id), "EVENT_WAIT_STARTED"), message="the event wait"
    )
    send_event(stub, "paid", "o-1", {"amount": 3})
    wait_for_status(stub, run_id, "COMPLETED")
    trace_id = get_run(stub, run_id).trace_id
    spans = assert_eventually(lambda: three_spans(collector, trace_id), message="the spans")

    events = history(stub, run_id)
    root = spans["run patient@1"]
    assert (root.span_id, root.parent_span_id) == (root_span_id(trace_id), "")
    for name, began, ended in [
        ("timer nap", "SLEEP_STARTED", "SLEEP_FIRED"),
        ("event payment", "EVENT_WAIT_STARTED", "EVENT_RECEIVED"),
    ]:
        span = spans[name]
        assert span.parent_span_id == root.span_id
        (start,) = events_of(events, began)
        (end,) = events_of(events, ended)
        assert abs(span.start_ns - start.time * 1e9) < SLACK_NS, name
        assert abs(span.end_ns - end.time * 1e9) < SLACK_NS, name
    assert spans["timer nap"].end_ns - spans["timer nap"].start_ns >= 0.3e9 - SLACK_NS
    assert spans["timer nap"].attributes["surefoot.outcome"] == "fired"
    assert spans["event payment"].attributes["surefoot.outcome"] == "received"

    # The history-derived spans are the live ones: same ids, same times.
    done = run_cli("runs", "trace", run_id, "--json", "--address", control_plane.address)
    assert done.returncode == 0, done.stderr
    derived = json.loads(done.stdout)["spans"]
    waits = {(d["what"], d["node_id"]): d for d in derived if d["kind"] == "wait"}
    for (what, node), span in [
        (("timer", "nap"), spans["timer nap"]),
        (("event", "payment"), spans["event payment"]),
    ]:
        assert waits[(what, node)]["span_id"] == span.span_id
        assert waits[(what, node)]["outcome"] == span.attributes["surefoot.outcome"]
        assert abs(waits[(what, node)]["started"] * 1e9 - span.start_ns) < SLACK_NS
        assert abs(waits[(what, node)]["ended"] * 1e9 - span.end_ns) < SLACK_NS
    (run,) = [d for d in derived if d["kind"] == "run"]
    assert abs(run["started"] * 1e9 - root.start_ns) < SLACK_NS
    assert abs(run["ended"] * 1e9 - root.end_ns) < SLACK_NS
