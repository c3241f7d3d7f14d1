"""Acceptance: 200 waiting runs paused by a filter at a rate, then resumed.

The dry run counts (per workflow version, and the runs the pause does not apply to) and
writes nothing; the pause acts on every applicable run exactly once, at the rate measured
from the items' commit times, each run's history holding one RUN_PAUSED with the
operation's principal, its comment and its id; runs that ended or were paused already are
not applicable, said so by the plan, and left alone; a repeated request id returns the
operation; resuming them by the same filter lets every one go on.
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_run_batch.batch_support import (
    PAUSE,
    RESUME,
    by_workflow,
    get_operation,
    items,
    measured_rate,
    operations,
    start_action,
    start_held_runs,
    wait_done,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.runs import events_of, get_run, history

RATE = 50.0
COUNT = 200


def test_two_hundred_runs_paused_by_filter_at_the_rate_then_resumed(
    control_plane: ControlPlane, database_url: str
) -> None:
    stub = control_plane.stub
    run_ids = start_held_runs(stub, "held-batch", COUNT)
    others = start_held_runs(stub, "held-other", 3)
    # Not applicable: one ended, one paused already by someone else.
    ended, paused_before = run_ids[:2]
    stub.CancelRun(ws.CancelRunRequest(run_id=ended, reason="done by hand"), timeout=30)
    stub.PauseRun(ws.PauseRunRequest(run_id=paused_before, reason="by hand"), timeout=30)
    to_pause = run_ids[2:]
    selection = by_workflow("held-batch")

    before = row_counts(database_url)
    dry = start_action(control_plane, selection, PAUSE, dry_run=True, rate_per_second=RATE)
    plan = dry.plan
    assert (plan.matched, plan.applicable, plan.not_applicable) == (COUNT, COUNT - 2, 2)
    assert [
        (w.workflow_name, w.workflow_version, w.matched, w.applicable) for w in plan.workflows
    ] == [("held-batch", "1", COUNT, COUNT - 2)]
    assert sorted((r.reason, r.count) for r in plan.reasons) == [
        ("already paused", 1),
        ("the run has ended (CANCELLED)", 1),
    ]
    assert plan.expected_duration.ToNanoseconds() == round((COUNT - 2) / RATE * 1e9)
    assert not dry.HasField("operation")
    assert row_counts(database_url) == before, "a dry run writes nothing"
    listed = operations(control_plane).ListOperations(opb.ListOperationsRequest(), timeout=30)
    assert list(listed.operations) == []

    started = start_action(
        control_plane,
        selection,
        PAUSE,
        rate_per_second=RATE,
        comment="INC-77: provider down, hold checkouts",
        request_id="inc-77-pause",
    )
    operation = started.operation
    assert not started.existing and operation.kind == "pause-runs"
    assert operation.action.type == opb.RUN_ACTION_TYPE_PAUSE
    assert operation.run_selection.filter.workflow_name == "held-batch"
    assert operation.run_plan == started.plan and started.plan.applicable == COUNT - 2
    again = start_action(
        control_plane, selection, PAUSE, rate_per_second=RATE,
        comment="INC-77: provider down, hold checkouts", request_id="inc-77-pause",
    )  # fmt: skip
    assert again.existing and again.operation.id == operation.id

    done = wait_done(control_plane, operation.id)
    p = done.progress
    assert done.state == opb.OPERATION_STATE_COMPLETED
    assert (p.matched, p.applied, p.not_applicable, p.pending, p.cancelled) == (
        COUNT, COUNT - 2, 2, 0, 0,
    )  # fmt: skip
    acted = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_APPLIED)
    assert sorted(i.run_id for i in acted) == sorted(to_pause)
    rate = measured_rate(acted)
    assert 0.8 * RATE <= rate <= 1.2 * RATE, f"measured {rate:.1f}/s at {RATE}/s"
    skipped = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_NOT_APPLICABLE)
    assert {i.run_id: i.reason for i in skipped} == {
        ended: "the run has ended (CANCELLED)",
        paused_before: "already paused",
    }

    # Law 7: one RUN_PAUSED per run, with who, why and which operation; nothing else paused.
    for run_id in to_pause:
        [event] = events_of(history(stub, run_id), "RUN_PAUSED")
        assert event.principal == operation.created_by != ""
        assert event.data["reason"] == "INC-77: provider down, hold checkouts"
        assert event.data["operation_id"] == operation.id
        run = get_run(stub, run_id)
        assert run.paused.paused_by == operation.created_by
    [by_hand] = events_of(history(stub, paused_before), "RUN_PAUSED")
    assert "operation_id" not in by_hand.data
    assert events_of(history(stub, ended), "RUN_PAUSED") == []
    for run_id in others:
        assert not get_run(stub, run_id).HasField("paused")

    # Resume them: the pause's runs and the one paused by hand, all of the workflow's.
    resumed = start_action(
        control_plane, selection, RESUME, rate_per_second=200.0, comment="provider back"
    ).operation
    assert resumed.run_plan.applicable == COUNT - 1
    done = wait_done(control_plane, resumed.id)
    assert (done.progress.applied, done.progress.not_applicable) == (COUNT - 1, 1)
    for run_id in run_ids[1:]:
        run = get_run(stub, run_id)
        assert run.status == run_pb2.RUN_STATUS_WAITING and not run.HasField("paused")
        [event] = events_of(history(stub, run_id), "RUN_RESUMED")
        assert (event.data["reason"], event.data["operation_id"]) == ("provider back", resumed.id)


def test_a_cancelled_pause_leaves_the_runs_not_reached_alone(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    run_ids = start_held_runs(stub, "held-cancelled", 20)
    operation = start_action(
        control_plane, by_workflow("held-cancelled"), PAUSE, rate_per_second=2.0
    ).operation
    assert_eventually(
        lambda: get_operation(control_plane, operation.id).progress.applied >= 2,
        message="two runs paused",
    )
    cancelled = (
        operations(control_plane)
        .CancelOperation(
            opb.CancelOperationRequest(operation_id=operation.id, reason="wrong workflow"),
            timeout=30,
        )
        .operation
    )
    assert cancelled.state == opb.OPERATION_STATE_CANCELLED
    done = wait_done(control_plane, operation.id)
    p = done.progress
    assert p.applied >= 2 and p.applied + p.cancelled == 20 and p.pending == 0
    paused = {
        i.run_id for i in items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_APPLIED)
    }
    for run_id in run_ids:
        assert get_run(stub, run_id).HasField("paused") == (run_id in paused)
