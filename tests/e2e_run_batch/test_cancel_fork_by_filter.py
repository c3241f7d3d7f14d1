"""Cancel, abandon and fork by filter.

A cancel by workflow and status acts on the runs still waiting and leaves the others;
an abandon records the operation on each run's COMPENSATION_STARTED; a fork by filter from
node `sign` starts one linked fork per parent, each reusing the parent's `prepare` output
(the step is not executed again), and the operation's items name every fork.
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_run_batch.batch_support import (
    ABANDON,
    CANCEL,
    by_workflow,
    items,
    prepared_then_held,
    start_action,
    start_held_runs,
    wait_done,
    wait_statuses,
)
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, get_run, history, json_payload, register, start_run


def test_cancel_by_workflow_and_status_then_abandon_what_is_left(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    run_ids = start_held_runs(stub, "cancel-batch", 30)
    completed_first = run_ids[:5]
    for run_id in completed_first:
        stub.CancelRun(ws.CancelRunRequest(run_id=run_id, reason="by hand"), timeout=30)
    selection = opb.RunSelection(
        filter=ws.RunFilter(workflow_name="cancel-batch", statuses=[run_pb2.RUN_STATUS_WAITING]),
        limit=20,
    )
    operation = start_action(control_plane, selection, CANCEL, comment="wrong price list").operation
    assert (operation.run_plan.matched, operation.run_plan.applicable) == (20, 20)
    done = wait_done(control_plane, operation.id)
    assert (done.progress.applied, done.progress.not_applicable) == (20, 0)
    cancelled = {i.run_id for i in items(control_plane, operation.id)}
    # The oldest 20 of those waiting, in creation order.
    assert cancelled == set(run_ids[5:25])
    for run_id in cancelled:
        run = get_run(stub, run_id)
        assert run.status == run_pb2.RUN_STATUS_CANCELLED
        [event] = events_of(history(stub, run_id), "RUN_CANCELLED")
        assert event.data == {"reason": "wrong price list", "operation_id": operation.id}

    # What is left of the workflow: 5 waiting, 25 ended; an abandon applies to the 5.
    abandoned = start_action(
        control_plane, by_workflow("cancel-batch"), ABANDON, comment="give up"
    ).operation
    assert (abandoned.run_plan.matched, abandoned.run_plan.applicable) == (30, 5)
    wait_done(control_plane, abandoned.id)
    wait_statuses(stub, run_ids[25:], "COMPENSATED")
    for run_id in run_ids[25:]:
        [event] = events_of(history(stub, run_id), "COMPENSATION_STARTED")
        assert event.data["operation_id"] == abandoned.id and "give up" in event.data["reason"]


def test_fork_by_filter_links_each_fork_to_its_parent_and_reuses_its_outputs(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    worker()
    register(stub, prepared_then_held("fork-batch"))
    parents = [start_run(stub, "fork-batch", {"trail": [f"p{i}"]}) for i in range(12)]
    wait_statuses(stub, parents, "WAITING")

    action = opb.RunAction(
        type=opb.RUN_ACTION_TYPE_FORK,
        from_node="sign",
        input_override=json_payload({"trail": ["override"]}),
    )
    dry = start_action(control_plane, by_workflow("fork-batch"), action, dry_run=True).plan
    assert (dry.matched, dry.applicable) == (12, 12)
    operation = start_action(
        control_plane, by_workflow("fork-batch"), action, comment="replay sign with new rules"
    ).operation
    assert operation.action.from_node == "sign"
    assert operation.action.input_override.data == action.input_override.data
    done = wait_done(control_plane, operation.id)
    assert (done.progress.applied, done.progress.not_applicable) == (12, 0)

    forked = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_APPLIED)
    assert sorted(i.run_id for i in forked) == sorted(parents)
    forks = {i.run_id: i.fork_run_id for i in forked}
    assert all(forks.values()) and len(set(forks.values())) == 12
    wait_statuses(stub, list(forks.values()), "WAITING")
    for parent_id, fork_id in forks.items():
        fork = get_run(stub, fork_id)
        assert (fork.forked_from.run_id, fork.forked_from.node_id) == (parent_id, "sign")
        assert fork_id in [f.run_id for f in get_run(stub, parent_id).forks]
        [started] = events_of(history(stub, fork_id), "RUN_STARTED")
        assert started.data["operation_id"] == operation.id
        assert started.data["comment"] == "replay sign with new rules"
        assert started.principal == operation.created_by
        assert started.data["input"] == {"trail": ["override"]}
        # `prepare` was reused from the parent, not executed again.
        assert execution_log.started(fork_id) == []
        assert [e.node_id for e in execution_log.started(parent_id)] == ["prepare"]
        # The parent is untouched: still waiting at sign, its history without the fork.
        assert get_run(stub, parent_id).status == run_pb2.RUN_STATUS_WAITING

    # The forks are runs of the workflow too; a fork from a node it does not have applies
    # to none of the 24.
    other = opb.RunAction(type=opb.RUN_ACTION_TYPE_FORK, from_node="nope")
    plan = start_action(control_plane, by_workflow("fork-batch"), other, dry_run=True).plan
    assert (plan.matched, plan.applicable) == (24, 0)
    assert [(r.reason, r.count) for r in plan.reasons] == [("fork-batch@1 has no node 'nope'", 24)]
