"""Acceptance: an outage dead-letters N charges; they are one group; a dry run says N and
the time at the rate; a redrive at that rate completes every run, charging each customer
once, at the rate measured from the items' recorded retry times; its request id acts once;
a control plane SIGKILLed mid-redrive resumes it with exact counts.

N is small for CI's time budget; tests/e2e_redrive/bench_redrive.py runs the 4,000 case
(`uv run python -m tests.e2e_redrive.bench_redrive --count 4000 --rate 200`).
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    AMOUNT,
    REDRIVE_STEPS,
    SIGNATURE,
    dead_letter_outage,
    dead_letter_run_ids,
    get_operation,
    groups,
    items,
    measured_rate,
    operations,
    start_redrive,
    wait_done,
    wait_statuses,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, history

RATE = 20.0


def assert_charged_once_each(api: OutagePaymentApi, customers: dict[str, str]) -> None:
    charges = api.charges()
    assert sorted(c["customer"] for c in charges) == sorted(customers.values())
    assert all(api.charged(customer) == AMOUNT for customer in customers.values())


def test_an_outage_is_one_group_and_a_throttled_redrive_completes_every_run_once(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    count = 60
    runs = dead_letter_outage(stub, payment_api, "outage-checkout", count)

    [group] = groups(stub)
    assert (group.workflow_name, group.workflow_version) == ("outage-checkout", "1")
    assert (group.step_type, group.step_version, group.idempotency) == (
        "redrive-charge",
        "1",
        "key",
    )
    assert (group.error_type, group.error_signature, group.count) == (
        "PaymentUnavailable",
        SIGNATURE,
        count,
    )
    assert group.sample_run_id in runs and "HTTP 503" in group.sample_message
    listed = stub.ListDeadLetters(ws.ListDeadLettersRequest(page_size=1000), timeout=30)
    seen = sorted(d.dead_lettered_at.ToNanoseconds() for d in listed.dead_letters)
    assert (group.oldest.ToNanoseconds(), group.newest.ToNanoseconds()) == (seen[0], seen[-1])
    selection = opb.RedriveSelection(filter=group.filter)

    dry = start_redrive(control_plane, selection, dry_run=True, rate_per_second=RATE)
    assert (dry.plan.matched, dry.plan.unsafe, dry.plan.to_redrive) == (count, 0, count)
    assert dry.plan.expected_duration.ToNanoseconds() == count / RATE * 1e9
    assert [(p.step_type, p.idempotency, p.count, p.excluded) for p in dry.plan.step_types] == [
        ("redrive-charge", "key", count, False)
    ]
    assert not dry.HasField("operation")
    listed_ops = operations(control_plane).ListOperations(opb.ListOperationsRequest(), timeout=30)
    assert list(listed_ops.operations) == [], "a dry run writes nothing"

    payment_api.recover()
    started = start_redrive(
        control_plane,
        selection,
        rate_per_second=RATE,
        comment="provider back after INC-42",
        request_id="inc-42-redrive",
    )
    operation = started.operation
    assert not started.existing and started.plan.to_redrive == count
    again = start_redrive(
        control_plane, selection, rate_per_second=RATE, request_id="inc-42-redrive"
    )
    assert again.existing and again.operation.id == operation.id

    done = wait_done(control_plane, operation.id)
    progress = done.progress
    assert done.state == opb.OPERATION_STATE_COMPLETED
    assert (progress.matched, progress.retried, progress.succeeded) == (count, count, count)
    assert (progress.pending, progress.running, progress.failed_again) == (0, 0, 0)
    assert (progress.not_retried, progress.cancelled, progress.interrupted) == (0, 0, 0)
    wait_statuses(stub, list(runs), "COMPLETED")
    assert_charged_once_each(payment_api, runs)
    assert groups(stub) == []

    retried = items(control_plane, operation.id)
    assert len(retried) == count
    assert {i.state for i in retried} == {opb.OPERATION_ITEM_STATE_SUCCEEDED}
    rate = measured_rate(retried)
    assert 0.8 * RATE <= rate <= 1.2 * RATE, f"measured {rate:.1f}/s at {RATE}/s"

    # Law 7: each run's history has the retry, with who, why and which operation.
    events = history(stub, next(iter(runs)))
    [retry] = events_of(events, "STEP_RETRIED")
    assert retry.data["comment"] == "provider back after INC-42"
    assert retry.data["operation_id"] == operation.id
    assert retry.principal == operation.created_by != ""


def test_a_control_plane_killed_mid_redrive_resumes_it_and_its_counts_stay_exact(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    count = 60
    runs = dead_letter_outage(stub, payment_api, "killed-checkout", count)
    payment_api.recover()
    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="killed-checkout"))
    operation = start_redrive(control_plane, selection, rate_per_second=10.0).operation

    assert_eventually(
        lambda: get_operation(control_plane, operation.id).progress.retried >= 15,
        message="a quarter of the items retried",
    )
    control_plane.kill()
    control_plane.restart()
    stub = control_plane.stub

    done = wait_done(control_plane, operation.id)
    progress = done.progress
    assert (progress.matched, progress.retried, progress.succeeded) == (count, count, count)
    assert (progress.pending, progress.running, progress.failed_again, progress.not_retried) == (
        0,
        0,
        0,
        0,
    )
    wait_statuses(stub, list(runs), "COMPLETED")
    assert_charged_once_each(payment_api, runs)
    # Never twice: one retry per run, by this operation.
    for run_id in runs:
        retries = events_of(history(stub, run_id), "STEP_RETRIED")
        assert [e.data["operation_id"] for e in retries] == [operation.id], run_id
    assert dead_letter_run_ids(stub) == set()
