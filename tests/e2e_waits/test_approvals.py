"""Acceptance: a run waits for a human. The control plane restarts while it waits; the
decision arrives through the API from an authenticated principal and the run goes down the
branch it chose. The decision is history (law 7): who, when, what they were shown, what they
decided and why; a second decision, a principal who is not an approver and a caller without
credentials are refused and change nothing.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import grpc
from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, BOB, CAROL, AuthControlPlane
from tests.support.executions import ExecutionLog
from tests.support.processes import StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.waits import (
    approval_status,
    decide,
    get_approval,
    pending_approvals,
    refusal,
    wait_until_a_worker_connected,
)
from tests.support.workflows import task_node

TITLE = "Onboard customer"
# Timestamps go through the database and protobuf; allow for their rounding.
CLOCK_TOLERANCE = 0.002


def onboarding(name: str) -> Any:
    """A manager approves (→ provision) or rejects (→ apologise) what the run input shows."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "manager",
                    "approval": {
                        "title": TITLE,
                        "approvers": ["group:managers", "carol"],
                        "show": {"customer": "input.customer", "amount": "input.amount"},
                        "approved_next": "provision",
                        "rejected_next": "apologise",
                    },
                },
                task_node("provision", None, "{trail: [input.customer]}"),
                task_node("apologise", None, "{trail: [input.customer]}"),
            ],
        }
    )


def test_approval_decided_after_a_restart_takes_its_branch_and_is_history(
    control_plane: AuthControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    register(control_plane.stub, onboarding("onboarding"))
    worker()
    to_approve = start_run(control_plane.stub, "onboarding", {"customer": "ACME", "amount": 1200})
    to_reject = start_run(control_plane.stub, "onboarding", {"customer": "Globex", "amount": 99})
    shown = {
        to_approve: {"customer": "ACME", "amount": 1200},
        to_reject: {"customer": "Globex", "amount": 99},
    }
    for run_id in (to_approve, to_reject):
        run = wait_for_status(control_plane.stub, run_id, "WAITING")
        assert "manager" in run.waiting_for and TITLE in run.waiting_for, run.waiting_for
        assert run.waiting_since.seconds > 0 and run.current_node == "manager"
    approval_ids = {run_id: f"{run_id}:manager" for run_id in (to_approve, to_reject)}

    control_plane.kill()
    control_plane.restart()
    stub = control_plane.stub
    # The worker comes back on its own; a decision before it does is the next test.
    wait_until_a_worker_connected(control_plane)

    # Still waiting, from the database alone: the approvals are pending and show the input.
    for run_id in (to_approve, to_reject):
        assert status_name(get_run(stub, run_id).status) == "WAITING"
    listed = {a.id: a for a in pending_approvals(stub, workflow_name="onboarding")}
    assert set(listed) == set(approval_ids.values())
    for run_id, approval_id in approval_ids.items():
        approval = listed[approval_id]
        assert (approval.run_id, approval.node_id, approval.title) == (run_id, "manager", TITLE)
        assert list(approval.approvers) == ["group:managers", "carol"]
        assert payload_value(approval.shown) == shown[run_id]
        assert approval_status(approval.status) == "PENDING"
    # Alice may decide through her group, Bob may not.
    assert {a.id for a in pending_approvals(stub, approver="alice")} == set(listed)
    assert pending_approvals(stub, approver="bob") == []

    assert_refused_without_changing_anything(control_plane, approval_ids[to_approve], to_approve)

    before = time.time()
    approved = decide(stub, approval_ids[to_approve], True, "welcome aboard", token=ALICE)
    rejected = decide(stub, approval_ids[to_reject], False, "credit check failed", token=CAROL)
    after = time.time()
    assert approval_status(approved.status) == "APPROVED" and approved.decided_by == "alice"
    assert approval_status(rejected.status) == "REJECTED" and rejected.decided_by == "carol"

    # Each run went down its branch, and only that one.
    done = wait_for_status(stub, to_approve, "COMPLETED")
    assert payload_value(done.output)["trail"] == ["ACME", "provision"]
    done = wait_for_status(stub, to_reject, "COMPLETED")
    assert payload_value(done.output)["trail"] == ["Globex", "apologise"]
    assert [e.node_id for e in execution_log.started(to_approve)] == ["provision"]
    assert [e.node_id for e in execution_log.started(to_reject)] == ["apologise"]

    decisions = {
        to_approve: ("alice", "approved", "welcome aboard", "APPROVED"),
        to_reject: ("carol", "rejected", "credit check failed", "REJECTED"),
    }
    for run_id, (principal, decision, comment, status) in decisions.items():
        events = history(stub, run_id)
        assert_history_well_formed(events)
        assert events[0].principal == "ops"  # who started it: the operator's token
        (requested,) = events_of(events, "APPROVAL_REQUESTED", "manager")
        assert requested.data["shown"] == shown[run_id]
        (decided,) = events_of(events, "APPROVAL_DECIDED", "manager")
        assert decided.principal == principal
        assert before - CLOCK_TOLERANCE <= decided.time <= after + CLOCK_TOLERANCE
        assert decided.data == {
            "decision": decision,
            "comment": comment,
            "shown": shown[run_id],
            "title": TITLE,
            "by_timeout": False,
            # The hash of exactly what the approval showed (tests/audit covers it).
            "content_hash": get_approval(stub, approval_ids[run_id]).content_hash,
        }
        # The approval record says the same as the history.
        approval = get_approval(stub, approval_ids[run_id])
        assert approval_status(approval.status) == status
        assert approval.decided_by == principal and approval.comment == comment
        decided_at = approval.decided_at.seconds + approval.decided_at.nanos / 1e9
        assert abs(decided_at - decided.time) <= CLOCK_TOLERANCE
        assert payload_value(approval.shown) == shown[run_id]
        assert not approval.decided_by_timeout

        # A second decision is refused, though it comes from the same approver.
        token = ALICE if principal == "alice" else CAROL
        change_of_mind = partial(
            decide, stub, approval_ids[run_id], decision != "approved", "no, wait", token=token
        )
        again = refusal(change_of_mind)
        assert again.code() == grpc.StatusCode.FAILED_PRECONDITION, again
        assert history(stub, run_id) == events
        assert get_approval(stub, approval_ids[run_id]) == approval


def assert_refused_without_changing_anything(
    control_plane: AuthControlPlane, approval_id: str, run_id: str
) -> None:
    stub = control_plane.stub
    events = history(stub, run_id)
    # The decider is who the credentials say, never who a request field claims: without a
    # token nobody can be identified. gRPC reserves UNAUTHENTICATED for exactly that
    # ("PERMISSION_DENIED must not be used if the caller can not be identified").
    anonymous = refusal(lambda: decide(control_plane.anonymous_stub, approval_id, True, "who?"))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED, anonymous
    unknown = refusal(lambda: decide(stub, approval_id, True, "forged", token="no-such-token"))
    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED, unknown
    # The operator and Bob are authenticated, but neither a manager nor carol.
    operator = refusal(lambda: decide(stub, approval_id, True, "rubber stamp"))
    assert operator.code() == grpc.StatusCode.PERMISSION_DENIED, operator
    not_an_approver = refusal(lambda: decide(stub, approval_id, True, "LGTM", token=BOB))
    assert not_an_approver.code() == grpc.StatusCode.PERMISSION_DENIED, not_an_approver
    assert "bob" in (not_an_approver.details() or "")

    assert history(stub, run_id) == events
    approval = get_approval(stub, approval_id)
    assert approval_status(approval.status) == "PENDING" and not approval.decided_by
    assert get_run(stub, run_id).status == run_pb2.RUN_STATUS_WAITING


def test_decision_right_after_a_restart_before_any_worker_is_back(
    control_plane: AuthControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    """The decision schedules a task whose step type no live worker has declared to this
    control plane process yet: the declaration comes from the database alone."""
    register(control_plane.stub, onboarding("onboarding-cold"))
    worker().kill()  # it declared the step types, then went away
    run_id = start_run(control_plane.stub, "onboarding-cold", {"customer": "Initech", "amount": 5})
    wait_for_status(control_plane.stub, run_id, "WAITING")
    control_plane.kill()
    control_plane.restart()
    stub = control_plane.stub

    approved = decide(stub, f"{run_id}:manager", True, "go", token=ALICE)

    assert approval_status(approved.status) == "APPROVED"
    run = get_run(stub, run_id)
    assert status_name(run.status) == "RUNNING" and run.current_node == "provision", run
    worker()
    done = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(done.output)["trail"] == ["Initech", "provision"]
    assert [e.node_id for e in execution_log.started(run_id)] == ["provision"]
