"""Acceptance: an AI node whose model never answers valid JSON asks a person.

Real processes: a control plane with credentials, the connector worker calling a scripted
model endpoint, a test worker for the node after. The reviewer sees the raw reply, the
validation errors and the node's input; approving with an output continues the run with it
(the switch routes on it, the next node's expression reads it); an output that breaks the
schema, or none at all, is INVALID_ARGUMENT and writes nothing; a rejection dead-letters
the step, and so does a review nobody decides before its deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.model_server import ModelServer, Reply
from controlplane.store.database import open_engine
from controlplane.store.schema import approvals, history
from tests.e2e.test_e2e_bad_input import field_violations
from tests.e2e_ai.conftest import TICKET, StartAiWorker, ai_definition, connection
from tests.support.approval_auth import ALICE, BOB, AuthControlPlane, bearer, write_auth_file
from tests.support.eventually import assert_eventually
from tests.support.processes import ProcessRegistry, StartWorker
from tests.support.runs import (
    CALL_TIMEOUT,
    events_of,
    get_run,
    json_payload,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.runs import history as read_history
from tests.support.waits import get_approval, refusal

BILLING = {"label": "billing", "confidence": 0.9}


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """The shared fixtures' control plane, with credentials: a decision needs a principal."""
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def reviewed_definition(server: ModelServer, name: str) -> definition_pb2.WorkflowDefinition:
    """classify (reviewed by bob) -> a switch on its label -> refund or answer, whose input
    reads the label."""
    then = [
        definition_pb2.Node(
            id="route",
            switch=definition_pb2.SwitchNode(
                cases=[
                    definition_pb2.SwitchNode.Case(
                        condition="steps.classify.output.label == 'billing'", next="refund"
                    )
                ],
                default_next="answer",
            ),
        ),
        *(
            definition_pb2.Node(
                id=node_id,
                task=definition_pb2.TaskNode(
                    step_type="e2e-work",
                    input="{trail: [steps.classify.output.label]}",
                    idempotency=common_pb2.IDEMPOTENCY_KEY,
                ),
            )
            for node_id in ("refund", "answer")
        ),
    ]
    review = definition_pb2.AiFallback(
        human_review=definition_pb2.AiHumanReview(title="Fix the class", approvers=["bob"])
    )
    return ai_definition(name, [connection(server)], fallbacks=[review], then=then)


def in_review(
    plane: AuthControlPlane, server: ModelServer, ai_worker: StartAiWorker, name: str
) -> tuple[str, apb.Approval]:
    """A run whose model answered three times (the first reply and 2 repairs) with no JSON,
    waiting for its review."""
    server.script("main", [Reply.text("it is about money")] * 3)
    register(plane.stub, reviewed_definition(server, name))
    ai_worker()
    run_id = start_run(plane.stub, name, TICKET)
    wait_for_status(plane.stub, run_id, "WAITING")
    approval = assert_eventually(
        lambda: get_approval(plane.stub, f"{run_id}:classify"), message="the review is open"
    )
    return run_id, approval


def decide(
    plane: AuthControlPlane, approval_id: str, approve: bool, output: Any = None, **kw: Any
) -> apb.Approval:
    request = apb.DecideApprovalRequest(approval_id=approval_id, approve=approve, **kw)
    if output is not None:
        request.output.CopyFrom(json_payload(output))
    call = plane.stub.DecideApproval(request, timeout=CALL_TIMEOUT, metadata=bearer(BOB))
    return call.approval


def written(database_url: str, run_id: str) -> tuple[int, list[tuple[str, str]]]:
    """(history rows of the run, (id, status) of its approvals), read from the database."""
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as c:
            count = c.execute(
                select(func.count()).select_from(history).where(history.c.run_id == run_id)
            ).scalar_one()
            rows = c.execute(
                select(approvals.c.id, approvals.c.status).where(approvals.c.run_id == run_id)
            ).all()
    finally:
        engine.dispose()
    return int(count), [(r.id, r.status) for r in rows]


def test_an_approved_review_gives_the_node_its_output_and_the_run_goes_on_with_it(
    control_plane: AuthControlPlane,
    model_server: ModelServer,
    ai_worker: StartAiWorker,
    worker: StartWorker,
    database_url: str,
) -> None:
    plane = control_plane
    run_id, approval = in_review(plane, model_server, ai_worker, "review-approved")
    worker()

    assert approval.title == "Fix the class"
    assert list(approval.approvers) == ["bob"]
    shown = payload_value(approval.shown)
    assert shown["reply"] == "it is about money"
    assert shown["errors"] and isinstance(shown["errors"], list)
    assert shown["input"] == TICKET

    before = written(database_url, run_id)
    outputs: list[tuple[Any, str]] = [
        ({"label": "refund", "confidence": 2}, "does not match the output schema"),
        (None, "needs the output"),
    ]
    for output, words in outputs:

        def approving(output: Any = output) -> object:
            return decide(plane, approval.id, True, output)

        error = refusal(approving)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        [(field, description)] = field_violations(error)
        assert field == "output" and words in description, description
    assert written(database_url, run_id) == before

    decided = decide(plane, approval.id, True, BILLING, comment="a double charge")
    assert (decided.decided_by, apb.ApprovalStatus.Name(decided.status)) == (
        "bob",
        "APPROVAL_STATUS_APPROVED",
    )
    run = wait_for_status(plane.stub, run_id, "COMPLETED")
    assert payload_value(run.output)["trail"] == ["billing", "refund"]

    events = read_history(plane.stub, run_id)
    [decision] = events_of(events, "APPROVAL_DECIDED", "classify")
    assert decision.principal == "bob"
    assert decision.data["ai"] == {"source": "human_review", "decided_by": "bob", "output": BILLING}
    [failed] = events_of(events, "ATTEMPT_FAILED", "classify")
    assert failed.data["ai"]["last_reply"] == "it is about money"
    assert not events_of(events, "STEP_DEAD_LETTERED")


def test_a_rejected_review_dead_letters_the_step_with_the_models_last_reply(
    control_plane: AuthControlPlane,
    model_server: ModelServer,
    ai_worker: StartAiWorker,
) -> None:
    plane = control_plane
    run_id, approval = in_review(plane, model_server, ai_worker, "review-rejected")

    decide(plane, approval.id, False, comment="this is spam")

    run = wait_for_status(plane.stub, run_id, "NEEDS_ATTENTION")
    assert run.last_error.type == "AiOutputInvalid"
    events = read_history(plane.stub, run_id)
    [dead] = events_of(events, "STEP_DEAD_LETTERED", "classify")
    assert dead.data["ai"]["last_reply"] == "it is about money"
    assert events_of(events, "APPROVAL_DECIDED")[0].principal == "bob"


def test_an_output_on_an_approval_that_is_no_review_is_refused(
    control_plane: AuthControlPlane, database_url: str
) -> None:
    plane = control_plane
    gate = definition_pb2.WorkflowDefinition(
        name="plain-gate",
        version="1",
        nodes=[definition_pb2.Node(id="gate", approval=definition_pb2.ApprovalNode(title="Go?"))],
    )
    register(plane.stub, gate)
    run_id = start_run(plane.stub, "plain-gate", {})
    wait_for_status(plane.stub, run_id, "WAITING")
    before = written(database_url, run_id)

    request = apb.DecideApprovalRequest(
        approval_id=f"{run_id}:gate", approve=True, output=json_payload({"x": 1})
    )
    error = refusal(
        lambda: plane.stub.DecideApproval(request, timeout=CALL_TIMEOUT, metadata=bearer(ALICE))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not an AI review" in (error.details() or "")
    assert written(database_url, run_id) == before
    assert status_name(get_run(plane.stub, run_id).status) == "WAITING"


def test_a_review_nobody_decides_in_time_dead_letters_the_step(
    control_plane: AuthControlPlane,
    model_server: ModelServer,
    ai_worker: StartAiWorker,
) -> None:
    plane = control_plane
    model_server.script("main", [Reply.text("no idea")] * 3)
    review = definition_pb2.AiFallback(
        human_review=definition_pb2.AiHumanReview(approvers=["bob"], timeout_seconds=1)
    )
    register(
        plane.stub, ai_definition("review-late", [connection(model_server)], fallbacks=[review])
    )
    ai_worker()

    run_id = start_run(plane.stub, "review-late", TICKET)

    run = wait_for_status(plane.stub, run_id, "NEEDS_ATTENTION")
    assert run.last_error.type == "AiOutputInvalid"
    approval = get_approval(plane.stub, f"{run_id}:classify")
    assert approval.title == "Review the reply of classify"
    assert apb.ApprovalStatus.Name(approval.status) == "APPROVAL_STATUS_REJECTED"
    assert approval.decided_by_timeout
    [decided] = events_of(read_history(plane.stub, run_id), "APPROVAL_DECIDED", "classify")
    assert decided.data["by_timeout"] is True
