"""The trace of a run built from its history and drawn as a waterfall, without a terminal or a
server: attempts, the backoff between them, waits as spans, compensations, an open run."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import timestamp_pb2
from surefoot.v1 import common_pb2, run_pb2

from console.trace import RUN_ROW, SpanKind, Trace
from console.trace_table import trace_rows
from console.waterfall import axis_label, bar, duration

T0 = 1_790_000_000.0


def event(seq: int, kind: str, at: float, node: str = "", attempt: int = 0, **data: Any) -> Any:
    time = timestamp_pb2.Timestamp()
    time.FromNanoseconds(int((T0 + at) * 1e9))
    return run_pb2.HistoryEvent(
        seq=seq,
        type=run_pb2.EventType.Value(f"EVENT_TYPE_{kind}"),
        time=time,
        node_id=node,
        attempt=attempt,
        data=common_pb2.Payload(encoding="json/plain", data=json.dumps(data).encode()),
    )


def flaky_history() -> list[Any]:
    """a ok; b fails twice (backoff 1 s, then 2 s), succeeds on its third attempt; done at 10."""
    error = {"type": "FlakyDependency", "message": "down", "retryable": True}
    kinds: list[tuple[str, float, str, int, dict[str, Any]]] = [
        ("RUN_STARTED", 0.0, "", 0, {}),
        ("STEP_SCHEDULED", 0.0, "a", 1, {"input": {}}),
        ("ATTEMPT_STARTED", 0.0, "a", 1, {"worker_id": "w1"}),
        ("ATTEMPT_COMPLETED", 2.0, "a", 1, {"output": {}}),
        ("STEP_SCHEDULED", 2.0, "b", 1, {"input": {}}),
        ("ATTEMPT_STARTED", 2.0, "b", 1, {"worker_id": "w1"}),
        ("ATTEMPT_FAILED", 3.0, "b", 1, {"error": error}),
        ("RETRY_SCHEDULED", 3.0, "b", 2, {"delay_seconds": 1.0, "due_at": T0 + 4.0}),
        ("ATTEMPT_STARTED", 4.0, "b", 2, {"worker_id": "w2"}),
        ("ATTEMPT_FAILED", 5.0, "b", 2, {"error": error}),
        ("RETRY_SCHEDULED", 5.0, "b", 3, {"delay_seconds": 2.0, "due_at": T0 + 7.0}),
        ("ATTEMPT_STARTED", 7.0, "b", 3, {"worker_id": "w1"}),
        ("ATTEMPT_COMPLETED", 9.0, "b", 3, {"output": {}}),
        ("RUN_COMPLETED", 10.0, "", 0, {}),
    ]
    return [
        event(seq, kind, at, node, attempt, **data)
        for seq, (kind, at, node, attempt, data) in enumerate(kinds, start=1)
    ]


def test_attempts_and_the_backoff_between_them_are_spans_on_the_axis() -> None:
    trace = Trace()
    trace.extend(flaky_history())
    assert [step.node_id for step in trace.steps] == ["a", "b"]
    b = trace.step("b")
    assert b is not None and b.status == "COMPLETED" and b.attempts == 3
    attempts = [(s.attempt, s.what, s.start - T0, (s.end or 0) - T0) for s in b.attempt_spans()]
    assert attempts == [
        (1, "failed", 2.0, 3.0),
        (2, "failed", 4.0, 5.0),
        (3, "completed", 7.0, 9.0),
    ]
    backoffs = [(s.start - T0, (s.end or 0) - T0) for s in b.spans if s.kind is SpanKind.BACKOFF]
    assert backoffs == [(3.0, 4.0), (5.0, 7.0)]
    assert trace.ended and trace.status == "COMPLETED"

    # 10 s on 20 cells: two cells a second. Failed attempts, the gaps, then success.
    drawn = bar(b, T0, T0 + 10.0, 20).plain
    assert drawn == "    ██╌╌██╌╌╌╌████  "
    styles = {span.style for span in bar(b, T0, T0 + 10.0, 20).spans}
    assert {"red", "yellow", "green"} <= styles
    # One attempt's row: its own span and the backoff that came before it.
    assert bar(b, T0, T0 + 10.0, 20, attempt=2).plain == "      ╌╌██          "


def test_a_repeated_event_is_applied_once() -> None:
    trace = Trace()
    history = flaky_history()
    trace.extend(history[:6])
    trace.extend(history[4:])  # a reconnect that delivers some events again
    b = trace.step("b")
    assert b is not None and len(b.attempt_spans()) == 3


def test_an_open_run_draws_its_running_attempt_up_to_now() -> None:
    trace = Trace()
    trace.extend(flaky_history()[:6])  # b's first attempt started at 2 s and runs on
    b = trace.step("b")
    assert b is not None and b.status == "RUNNING"
    drawn = bar(b, T0, T0 + 4.0, 8).plain
    assert drawn == "    ▓▓▓▓"
    assert axis_label(trace, T0 + 4.0, 20) == "0s         4.00s now"
    rows = trace_rows(trace, T0 + 4.0, 8, expanded={"b"})
    assert [row.key for row in rows] == [RUN_ROW, "a", "b", "b#1"]
    assert rows[3].cells[1].plain == "RUNNING"


def test_waits_are_spans_and_a_compensation_marks_the_step_it_undid() -> None:
    history = [
        event(1, "RUN_STARTED", 0.0),
        event(2, "APPROVAL_REQUESTED", 0.0, "approve", 1, title="Ship it?"),
        event(3, "APPROVAL_DECIDED", 4.0, "approve", 1, decision="approved"),
        event(4, "SLEEP_STARTED", 4.0, "cool", 1, due_at=T0 + 6.0),
        event(5, "SLEEP_FIRED", 6.0, "cool", 1),
        event(6, "STEP_SCHEDULED", 6.0, "a", 1, input={}),
        event(7, "ATTEMPT_STARTED", 6.0, "a", 1),
        event(8, "ATTEMPT_COMPLETED", 7.0, "a", 1),
        event(9, "STEP_SCHEDULED", 7.0, "b", 1, input={}),
        event(10, "ATTEMPT_STARTED", 7.0, "b", 1),
        event(11, "ATTEMPT_FAILED", 8.0, "b", 1, error={"type": "CardDeclined"}),
        event(12, "STEP_DEAD_LETTERED", 8.0, "b", 1, error={"type": "CardDeclined"}),
        event(13, "COMPENSATION_STARTED", 8.0, order=["a"]),
        event(14, "STEP_SCHEDULED", 8.0, "a.compensation", 1, input={}),
        event(15, "ATTEMPT_STARTED", 8.0, "a.compensation", 1),
        event(16, "ATTEMPT_COMPLETED", 9.0, "a.compensation", 1),
        event(17, "RUN_COMPENSATED", 10.0),
    ]
    trace = Trace()
    trace.extend(history[:13])
    a = trace.step("a")
    assert a is not None and a.status == "COMPLETED"
    assert trace.run.status == "COMPENSATING"
    trace.extend(history[13:])
    approval, sleep = trace.step("approve"), trace.step("cool")
    assert approval is not None and approval.kind == "approval"
    assert approval.status == "APPROVED"
    assert bar(approval, T0, T0 + 10.0, 10).plain == "░░░░      "
    assert sleep is not None and sleep.kind == "sleep"
    assert bar(sleep, T0, T0 + 10.0, 10).plain == "    ░░    "
    assert a.status == "COMPENSATED"
    compensation = trace.step("a.compensation")
    assert compensation is not None and compensation.kind == "compensation"
    b = trace.step("b")
    # The dead letter waited until the run ended.
    assert b is not None and b.status == "DEAD_LETTERED"
    assert bar(b, T0, T0 + 10.0, 10).plain == "       █░░"
    assert trace.status == "COMPENSATED"


def test_durations_fit_six_characters() -> None:
    cases = {0.34: "340ms", 2.414: "2.41s", 42.0: "42.0s", 185: "3m05s", 7380: "2h03m"}
    cases[3 * 86400 + 4 * 3600] = "3d04h"
    for seconds, shown in cases.items():
        assert duration(seconds) == shown
        assert len(shown) <= 6


def test_an_attempt_the_run_reports_running_is_drawn_until_history_records_it() -> None:
    trace = Trace()
    history = flaky_history()
    trace.extend(history[:5])  # b scheduled at 2 s; history says nothing of its start yet
    trace.note_running("b", 1, T0 + 2.5, "w1")
    b = trace.step("b")
    assert b is not None and b.status == "RUNNING"
    assert bar(b, T0, T0 + 4.0, 8).plain == "    ·▓▓▓"
    trace.extend(history[5:7])  # its start (at 2 s) and its failure, together
    assert [(s.attempt, s.what) for s in b.attempt_spans()] == [(1, "failed")]
    assert bar(b, T0, T0 + 4.0, 8).plain == "    ██  "


def test_a_short_backoff_keeps_a_cell_between_its_attempts_on_a_long_run() -> None:
    error = {"type": "FlakyDependency"}
    history = [
        event(1, "RUN_STARTED", 0.0),
        event(2, "STEP_SCHEDULED", 0.0, "b", 1, input={}),
        event(3, "ATTEMPT_STARTED", 0.0, "b", 1),
        event(4, "ATTEMPT_FAILED", 10.5, "b", 1, error=error),
        event(5, "RETRY_SCHEDULED", 10.5, "b", 2, due_at=T0 + 10.7),
        event(6, "ATTEMPT_STARTED", 10.7, "b", 2),
        event(7, "ATTEMPT_COMPLETED", 20.0, "b", 2),
        event(8, "RUN_COMPLETED", 20.0),
    ]
    trace = Trace()
    trace.extend(history)
    b = trace.step("b")
    assert b is not None
    # 0.2 s of backoff on a 20 s axis of 20 cells: a tenth of a cell, drawn as one.
    drawn = bar(b, T0, T0 + 20.0, 20)
    assert drawn.plain == "██████████╌█████████"
    assert [span.style for span in drawn.spans][9:12] == ["red", "yellow", "green"]
