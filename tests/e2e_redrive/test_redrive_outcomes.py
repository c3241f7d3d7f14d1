"""What a redrive reports when it does not simply succeed: items that fail again (which, and
why: they are dead letters again, in their group), steps declared idempotency none (left
alone without include_unsafe), and a cancellation (what was not retried stays a dead letter).
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    REDRIVE_STEPS,
    SIGNATURE,
    customer,
    dead_letter_outage,
    dead_letter_run_ids,
    get_operation,
    groups,
    items,
    operations,
    start_redrive,
    wait_done,
    wait_statuses,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, history


def test_half_fail_again_are_reported_exactly_and_are_back_in_the_group(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    count = 20
    runs = dead_letter_outage(stub, payment_api, "half-fixed", count)
    still_failing = {customer(i) for i in range(0, count, 2)}
    payment_api.recover(still_failing)
    failing_runs = {run_id for run_id, c in runs.items() if c in still_failing}

    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="half-fixed"))
    operation = start_redrive(control_plane, selection, rate_per_second=50.0).operation
    done = wait_done(control_plane, operation.id)

    progress = done.progress
    assert (progress.matched, progress.retried) == (count, count)
    assert (progress.succeeded, progress.failed_again, progress.running) == (10, 10, 0)
    assert done.state == opb.OPERATION_STATE_COMPLETED
    [failure] = done.failures
    assert (failure.error_type, failure.error_signature, failure.count) == (
        "PaymentUnavailable",
        SIGNATURE,
        10,
    )
    assert set(failure.sample_run_ids) <= failing_runs and len(failure.sample_run_ids) == 5
    failed = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_FAILED_AGAIN)
    assert {i.run_id for i in failed} == failing_runs
    assert all("HTTP 503" in i.error_message for i in failed)
    succeeded = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_SUCCEEDED)
    assert {i.run_id for i in succeeded} == set(runs) - failing_runs

    # They are dead letters again, one group of 10, after a new attempt.
    wait_statuses(stub, sorted(failing_runs), "NEEDS_ATTENTION")
    wait_statuses(stub, sorted(set(runs) - failing_runs), "COMPLETED")
    [group] = groups(stub, workflow_name="half-fixed")
    assert (group.count, group.error_signature) == (10, SIGNATURE)
    assert dead_letter_run_ids(stub, workflow_name="half-fixed") == failing_runs
    assert {c["customer"] for c in payment_api.charges()} == set(runs.values()) - still_failing


def test_steps_declared_idempotency_none_are_redriven_only_with_include_unsafe(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    safe = dead_letter_outage(stub, payment_api, "mixed-safe", 3)
    unsafe = dead_letter_outage(stub, payment_api, "mixed-unsafe", 2, "redrive-transfer")
    payment_api.recover()
    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(error_type="PaymentUnavailable"))

    dry = start_redrive(control_plane, selection, dry_run=True, rate_per_second=4.0).plan
    assert (dry.matched, dry.unsafe, dry.to_redrive) == (5, 2, 3)
    assert dry.expected_duration.ToNanoseconds() == 750_000_000
    assert [(s.step_type, s.idempotency, s.count, s.excluded) for s in dry.step_types] == [
        ("redrive-charge", "key", 3, False),
        ("redrive-transfer", "none", 2, True),
    ]
    with_unsafe = start_redrive(
        control_plane, selection, dry_run=True, rate_per_second=4.0, include_unsafe=True
    ).plan
    assert (with_unsafe.matched, with_unsafe.unsafe, with_unsafe.to_redrive) == (5, 2, 5)

    operation = start_redrive(control_plane, selection, rate_per_second=50.0).operation
    done = wait_done(control_plane, operation.id)
    assert (done.progress.matched, done.progress.excluded, done.progress.succeeded) == (5, 2, 3)
    excluded = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_EXCLUDED)
    assert {i.run_id for i in excluded} == set(unsafe)
    wait_statuses(stub, list(safe), "COMPLETED")
    assert dead_letter_run_ids(stub) == set(unsafe)
    for run_id in unsafe:
        assert events_of(history(stub, run_id), "STEP_RETRIED") == []

    # Told so, a second redrive retries them.
    operation = start_redrive(
        control_plane, selection, rate_per_second=50.0, include_unsafe=True
    ).operation
    done = wait_done(control_plane, operation.id)
    assert (done.progress.matched, done.progress.excluded, done.progress.succeeded) == (2, 0, 2)
    wait_statuses(stub, list(unsafe), "COMPLETED")


def test_a_cancelled_redrive_retries_nothing_more_and_leaves_the_rest_dead_letters(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    count = 20
    runs = dead_letter_outage(stub, payment_api, "cancelled-redrive", count)
    payment_api.recover()
    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="cancelled-redrive"))
    operation = start_redrive(control_plane, selection, rate_per_second=2.0).operation
    assert_eventually(
        lambda: get_operation(control_plane, operation.id).progress.retried >= 2,
        message="two items retried",
    )
    cancelled = (
        operations(control_plane)
        .CancelOperation(
            opb.CancelOperationRequest(operation_id=operation.id, reason="wrong selection"),
            timeout=30,
        )
        .operation
    )
    assert cancelled.state == opb.OPERATION_STATE_CANCELLED
    assert cancelled.cancel_reason == "wrong selection" and cancelled.cancelled_by

    done = wait_done(control_plane, operation.id)
    progress = done.progress
    assert done.state == opb.OPERATION_STATE_CANCELLED
    assert progress.retried + progress.cancelled == count and progress.pending == 0
    assert progress.retried == progress.succeeded and progress.cancelled >= count - 4
    retried = {
        i.run_id for i in items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_SUCCEEDED)
    }
    assert dead_letter_run_ids(stub, workflow_name="cancelled-redrive") == set(runs) - retried
    # Cancelling again answers it as it is.
    again = (
        operations(control_plane)
        .CancelOperation(opb.CancelOperationRequest(operation_id=operation.id), timeout=30)
        .operation
    )
    assert again.progress == done.progress and again.cancel_reason == "wrong selection"
