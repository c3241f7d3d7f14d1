"""What the console shows for each message, without a terminal or a server."""

from __future__ import annotations

import json

from google.protobuf import timestamp_pb2
from surefoot.v1 import approval_pb2, common_pb2, run_pb2

from console import render

T0 = timestamp_pb2.Timestamp(seconds=1_790_000_000, nanos=123_456_789)  # 2026-09-21T14:13:20Z


def payload(value: object) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


def test_a_waiting_run_says_what_it_waits_for_and_a_stuck_one_its_error() -> None:
    waiting = run_pb2.Run(
        id="r1",
        workflow_name="orders",
        workflow_version="2",
        status=run_pb2.RUN_STATUS_WAITING,
        waiting_for="approval 'Ship it?' of 'approve' by anyone",
        updated_at=T0,
    )
    assert render.run_row(waiting) == (
        "r1",
        "orders@2",
        "WAITING",
        "approval 'Ship it?' of 'approve' by anyone",
        "2026-09-21T14:13:20Z",
    )
    stuck = run_pb2.Run(
        id="r2",
        status=run_pb2.RUN_STATUS_NEEDS_ATTENTION,
        last_error=run_pb2.StepError(type="CardDeclined", message="b: card 4242 declined"),
    )
    row = render.run_row(stuck)
    assert row[2:] == ("NEEDS_ATTENTION", "CardDeclined: b: card 4242 declined", "-")


def test_long_cells_are_cut_to_one_line() -> None:
    cut = render.shorten("line one\nline two " + "x" * 100, 20)
    assert cut == "line one line two x…" and len(cut) == 20
    assert render.shorten("short") == "short"


def test_an_event_is_one_line_with_its_data() -> None:
    event = run_pb2.HistoryEvent(
        seq=7,
        type=run_pb2.EVENT_TYPE_APPROVAL_DECIDED,
        time=T0,
        node_id="approve",
        attempt=1,
        principal="alice",
        data=payload({"decision": "approved", "comment": "ok\nfine" + "y" * 200}),
    )
    line = render.event_line(event)
    assert "\n" not in line
    assert line.split()[:6] == [
        "7",
        "2026-09-21T14:13:20.123Z",
        "APPROVAL_DECIDED",
        "approve",
        "#1",
        "alice",
    ]
    assert '{"decision":"approved","comment":"ok\\nfine' in line and line.endswith("…")
    started = run_pb2.HistoryEvent(seq=1, type=run_pb2.EVENT_TYPE_RUN_STARTED)
    assert render.event_line(started).split() == ["1", "-", "RUN_STARTED", "-", "-", "-"]


def test_a_payload_that_is_not_json_is_shown_as_text() -> None:
    raw = common_pb2.Payload(encoding="json/plain", data=b"{oops")
    assert render.compact_json(raw) == "{oops"
    assert render.compact_json(common_pb2.Payload()) == ""


def test_the_input_to_edit_is_the_steps_then_the_scheduled_events() -> None:
    scheduled = run_pb2.HistoryEvent(
        seq=3,
        type=run_pb2.EVENT_TYPE_STEP_SCHEDULED,
        node_id="b",
        data=payload({"input": {"amount": 42}, "step_type": "charge"}),
    )
    run = run_pb2.Run(steps=[run_pb2.Step(node_id="b", input=payload({"amount": 41}))])
    assert json.loads(render.step_input(run, [scheduled], "b")) == {"amount": 41}
    without_input = run_pb2.Run(steps=[run_pb2.Step(node_id="b")])
    assert json.loads(render.step_input(without_input, [scheduled], "b")) == {"amount": 42}
    assert render.step_input(without_input, [], "b") == "{}"


def test_a_step_is_a_row() -> None:
    step = run_pb2.Step(
        node_id="b",
        kind="task",
        step_type="charge",
        status=run_pb2.STEP_STATUS_DEAD_LETTERED,
        attempt=3,
        last_error=run_pb2.StepError(type="CardDeclined", message="declined"),
    )
    assert render.step_row(step) == (
        "b",
        "task charge",
        "DEAD_LETTERED",
        "3",
        "CardDeclined: declined",
    )


def test_a_running_step_shows_what_its_worker_last_said_of_its_progress() -> None:
    finished = run_pb2.Attempt(number=1, outcome=run_pb2.ATTEMPT_OUTCOME_LOST)
    running = run_pb2.Attempt(
        number=2,
        outcome=run_pb2.ATTEMPT_OUTCOME_RUNNING,
        details=common_pb2.Payload(encoding="json/plain", data=b'{"done": 4000}'),
    )
    step = run_pb2.Step(
        node_id="import",
        kind="task",
        step_type="import-rows",
        status=run_pb2.STEP_STATUS_RUNNING,
        attempt=2,
        attempts=[finished, running],
    )
    assert render.step_row(step)[-1] == 'progress: {"done": 4000}'
    del step.attempts[-1]
    assert render.step_row(step)[-1] == ""


def test_an_approval_shows_exactly_what_the_approver_sees() -> None:
    approval = approval_pb2.Approval(
        id="r1:approve",
        run_id="r1",
        node_id="approve",
        workflow_name="onboarding",
        workflow_version="1",
        title="Approve the new customer",
        shown=payload({"customer": "ACME", "amount": 49}),
        requested_at=T0,
    )
    row = render.approval_row(approval)
    assert row[0] == "r1:approve" and row[3] == "anyone authenticated"
    assert row[5] == '{"customer":"ACME","amount":49}'
    details = render.approval_details(approval)
    assert details.startswith("Approve the new customer\n")
    shown = json.loads(details.split("shown:\n", 1)[1])
    assert shown == {"customer": "ACME", "amount": 49}
