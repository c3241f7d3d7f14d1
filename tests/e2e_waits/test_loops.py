"""A loop back into a node makes a new operation: a rejected draft goes back to drafting and
to review again. Each entry has its own idempotency key and its own approval, while the
attempts of one entry keep one key (law 3)."""

from __future__ import annotations

from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, CAROL, AuthControlPlane
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import StartWorker
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import approval_status, decide, get_approval, pending_approvals
from tests.support.workflows import task_node


def drafting() -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": "drafting",
            "version": "1",
            "nodes": [
                task_node("draft", "review", "{trail: [input.title]}"),
                {
                    "id": "review",
                    "approval": {
                        "title": "Publish this draft?",
                        "approvers": ["group:managers", "carol"],
                        "show": {"draft": "steps.draft.output"},
                        "approved_next": "publish",
                        "rejected_next": "draft",
                    },
                },
                task_node("publish", None, "steps.draft.output"),
            ],
        }
    )


def test_each_pass_through_a_loop_has_its_own_key_and_approval(
    control_plane: AuthControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, drafting())
    worker()
    run_id = start_run(stub, "drafting", {"title": "Q3 report"})

    def pending_review() -> str:
        pending = [a.id for a in pending_approvals(stub, workflow_name="drafting")]
        assert len(pending) == 1, pending
        return pending[0]

    first = assert_eventually(pending_review, timeout=60)
    decide(stub, first, False, "needs numbers", token=CAROL)
    second = assert_eventually(pending_review, timeout=60)
    decide(stub, second, True, "good now", token=ALICE)
    done = wait_for_status(stub, run_id, "COMPLETED")

    assert (first, second) == (f"{run_id}:review", f"{run_id}:review#2")
    assert approval_status(get_approval(stub, first).status) == "REJECTED"
    assert approval_status(get_approval(stub, second).status) == "APPROVED"
    assert payload_value(done.output)["trail"] == ["Q3 report", "draft", "publish"]
    drafts = [e for e in execution_log.started(run_id) if e.node_id == "draft"]
    assert [e.idempotency_key for e in drafts] == [f"{run_id}:draft", f"{run_id}:draft#2"]
    scheduled = events_of(history(stub, run_id), "STEP_SCHEDULED", "draft")
    assert [e.data["idempotency_key"] for e in scheduled] == [
        f"{run_id}:draft",
        f"{run_id}:draft#2",
    ]
