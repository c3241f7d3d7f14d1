"""What the console shows of dead-letter groups, redrive plans, operations, workers and
definitions, without a terminal or a server."""

from __future__ import annotations

from google.protobuf import duration_pb2, timestamp_pb2
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws

from console import render_fleet, render_incident

FIRST = timestamp_pb2.Timestamp(seconds=1_790_000_000)  # 2026-09-21T14:13:20Z
LAST = timestamp_pb2.Timestamp(seconds=1_790_000_000 + 3_725)


def group() -> ws.DeadLetterGroup:
    return ws.DeadLetterGroup(
        workflow_name="checkout",
        workflow_version="2",
        step_type="charge-card",
        step_version="1",
        error_type="PaymentUnavailable",
        error_signature="charge <id> failed: HTTP <n>",
        idempotency="key",
        count=4000,
        oldest=FIRST,
        newest=LAST,
        sample_message="charge req_1 failed: HTTP 503",
        sample_run_id="r9",
    )


def test_a_group_row_has_its_count_idempotency_and_first_and_last_seen() -> None:
    assert render_incident.group_row(group()) == (
        "4000",
        "checkout@2",
        "charge-card@1",
        "key",
        "PaymentUnavailable",
        "09-21 14:13:20",
        "09-21 15:15:25",
    )
    details = render_incident.group_details(group())
    assert "signature: charge <id> failed: HTTP <n>" in details
    assert "first seen 2026-09-21T14:13:20Z · last seen 2026-09-21T15:15:25Z" in details
    assert "safe to retry" in details


def test_two_groups_differing_only_by_signature_have_different_keys() -> None:
    other = group()
    other.error_signature = "charge <id> failed: timeout"
    assert render_incident.group_key(group()) != render_incident.group_key(other)


def test_a_dead_letter_in_full_shows_the_error_details_input_and_every_attempt() -> None:
    dead_letter = ws.DeadLetter(
        run_id="r1",
        node_id="charge",
        error_type="PaymentUnavailable",
        error_message="HTTP 503 " + "x" * 300,
        attempts=2,
        idempotency="key",
    )
    step = run_pb2.Step(
        node_id="charge",
        status=run_pb2.STEP_STATUS_DEAD_LETTERED,
        input=common_pb2.Payload(encoding="json/plain", data=b'{"amount": 12}'),
        last_error=run_pb2.StepError(type="PaymentUnavailable", details="Traceback: line 4"),
        attempts=[
            run_pb2.Attempt(
                number=1,
                worker_id="w1",
                outcome=run_pb2.ATTEMPT_OUTCOME_FAILED,
                error=run_pb2.StepError(type="PaymentUnavailable", message="HTTP 503"),
            )
        ],
    )
    text = render_incident.dead_letter_details(dead_letter, step)
    assert "x" * 300 in text, "the error is never cut"
    assert "Traceback: line 4" in text
    assert '"amount": 12' in text
    assert "#1 FAILED" in text and "worker w1" in text


def test_a_plan_says_how_many_which_are_unsafe_and_how_long() -> None:
    plan = opb.RedrivePlan(
        matched=300,
        unsafe=20,
        to_redrive=280,
        rate_per_second=50,
        expected_duration=duration_pb2.Duration(seconds=5, nanos=600_000_000),
        step_types=[
            opb.PlannedStepType(step_type="charge", step_version="1", idempotency="key", count=280),
            opb.PlannedStepType(step_type="transfer", idempotency="none", count=20, excluded=True),
        ],
    )
    text = render_incident.plan_text(plan)
    assert "matched 300 · to redrive 280 · unsafe (idempotency none) 20" in text
    assert "at 50/s: about 5.6s" in text
    assert "20 × transfer (none) · NOT redriven (unsafe)" in text
    assert render_incident.duration(3725.0) == "1h 2m 5s"


def test_a_redrive_progress_counts_what_settled_of_what_it_retries() -> None:
    operation = opb.Operation(
        id="op1",
        kind="redrive",
        state=opb.OPERATION_STATE_RUNNING,
        created_by="alice",
        comment="psp back",
        rate_per_second=50,
        progress=opb.OperationProgress(
            matched=300, retried=120, running=20, succeeded=95, failed_again=5, pending=180
        ),
    )
    assert render_incident.operation_done(operation) == (100, 300)
    text = render_incident.operation_progress(operation)
    assert "retried 120 of 300 · running 20 · succeeded 95 · failed again 5" in text
    assert "comment: psp back" in text and "33%" in text
    assert render_incident.operation_row(operation)[2:4] == ("RUNNING", "100/300")


def test_a_queue_nobody_serves_is_flagged_and_a_deprecated_version_says_why() -> None:
    stuck = wpb.QueuedStepType(name="charge", version="2", queued=40, capable_workers=0)
    assert render_fleet.queue_row(stuck)[4] == render_fleet.NO_WORKER
    worker = wpb.ConnectedWorker(
        worker_id="w1",
        step_types=[wpb.WorkerStepType(name="charge", version="1")],
        credit=8,
        in_flight=3,
        draining=True,
    )
    assert render_fleet.worker_row(worker)[:5] == ("w1", "charge@1", "8", "3", "draining")
    info = ws.DefinitionInfo(
        name="checkout",
        version="1",
        sequence=1,
        runs_in_flight=7,
        deprecated=True,
        deprecation_reason="double charge bug",
    )
    row = render_fleet.definition_row(info, marked=True)
    assert row[:6] == ("*", "checkout", "1", "1", "7", "deprecated: double charge bug")
