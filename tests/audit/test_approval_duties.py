"""Acceptance: separation of duties and the hash of what an approver was shown, against a
control plane with credentials.

An approval node that declares separation of duties refuses its run's starter and whoever
decided an earlier approval of the run (PERMISSION_DENIED), and records the refusal in the
run's history; a decision naming content other than what the approval shows is refused and
writes nothing; a decision records the hash of what was shown, and the chain still verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from controlplane.audit.content import shown_hash
from controlplane.store.database import open_engine
from controlplane.store.schema import approvals, history
from tests.support.approval_auth import (
    ALICE,
    BOB,
    CAROL,
    OPERATOR,
    AuthControlPlane,
    bearer,
    write_auth_file,
)
from tests.support.processes import ProcessRegistry, run_cli
from tests.support.runs import (
    CALL_TIMEOUT,
    events_of,
    json_payload,
    register,
    start_run,
    wait_for_status,
)
from tests.support.runs import (
    history as read_history,
)
from tests.support.waits import decide, get_approval, pending_approvals, refusal


@pytest.fixture
def plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def two_looks(name: str) -> Any:
    """Two approvals in a row, each with separation of duties; no worker needed."""
    look = {"show": {"amount": "input.amount"}, "separation_of_duties": True}
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {"id": "first", "approval": {"title": "First look", **look}, "next": "second"},
                {"id": "second", "approval": {"title": "Second look", **look}},
            ],
        }
    )


def pending_id(plane: AuthControlPlane, run_id: str, node_id: str) -> str:
    found = [a for a in pending_approvals(plane.stub) if a.run_id == run_id]
    assert [a.node_id for a in found] == [node_id], found
    return found[0].id


def rows(database_url: str, run_id: str) -> tuple[int, list[tuple[str, str]]]:
    """(history rows of the run, (id, status) of its approvals), read from the database."""
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as c:
            count = c.execute(
                select(func.count()).select_from(history).where(history.c.run_id == run_id)
            ).scalar_one()
            statuses = c.execute(
                select(approvals.c.id, approvals.c.status)
                .where(approvals.c.run_id == run_id)
                .order_by(approvals.c.id)
            ).all()
    finally:
        engine.dispose()
    return int(count), [(r.id, r.status) for r in statuses]


def test_the_starter_and_earlier_approvers_are_refused_and_the_refusals_are_history(
    plane: AuthControlPlane, database_url: str
) -> None:
    stub = plane.stub
    register(stub, two_looks("duties"))
    started = stub.StartRun(
        ws.StartRunRequest(workflow_name="duties", input=json_payload({"amount": 900})),
        timeout=CALL_TIMEOUT,
        metadata=bearer(ALICE),
    )
    run_id = started.run_id
    first = pending_id(plane, run_id, "first")

    before = rows(database_url, run_id)
    error = refusal(lambda: decide(stub, first, True, "mine, fine", token=ALICE))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "separation of duties: alice started the run" in (error.details() or "")
    count, statuses = rows(database_url, run_id)
    # One event more (the refusal), and the approval is as it was.
    assert (count, statuses) == (before[0] + 1, before[1])
    refused = read_history(stub, run_id)[-1]
    assert (refused.type, refused.principal, refused.node_id) == (
        "APPROVAL_DECISION_REFUSED",
        "alice",
        "first",
    )
    assert refused.data["reason"] == "separation of duties: alice started the run"
    assert refused.data["approval_id"] == first and refused.data["decision"] == "approve"

    decide(stub, first, True, "checked", token=BOB)
    second = pending_id(plane, run_id, "second")
    for token, why in ((BOB, "bob decided an earlier approval"), (ALICE, "alice started the run")):

        def deciding(token: str = token) -> object:
            return decide(stub, second, False, "", token=token)

        error = refusal(deciding)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert why in (error.details() or "")
    decide(stub, second, True, "four eyes", token=CAROL)
    wait_for_status(stub, run_id, "COMPLETED")

    events = read_history(stub, run_id)
    refusals = events_of(events, "APPROVAL_DECISION_REFUSED")
    assert [(e.principal, e.node_id) for e in refusals] == [
        ("alice", "first"),
        ("bob", "second"),
        ("alice", "second"),
    ]
    decided = events_of(events, "APPROVAL_DECIDED")
    assert [(e.principal, e.node_id) for e in decided] == [("bob", "first"), ("carol", "second")]

    # The refusals are links of the chain like any event.
    result = run_cli("audit", "verify", run_id, "--address", plane.address, SUREFOOT_TOKEN=OPERATOR)
    assert result.returncode == 0 and "intact" in result.stdout, result


def test_a_decision_on_other_content_than_shown_is_refused_and_writes_nothing(
    plane: AuthControlPlane, database_url: str
) -> None:
    stub = plane.stub
    register(stub, two_looks("shown"))
    run_id = start_run(stub, "shown", {"amount": 12})
    approval_id = pending_id(plane, run_id, "first")
    approval = get_approval(stub, approval_id)
    # What the server says it serves is what a client computes over what it received.
    assert approval.content_hash == shown_hash(approval)
    assert len(approval.content_hash) == 64

    before = rows(database_url, run_id)
    stale = apb.DecideApprovalRequest(approval_id=approval_id, approve=True, shown_hash="0" * 64)
    error = refusal(
        lambda: stub.DecideApproval(stale, timeout=CALL_TIMEOUT, metadata=bearer(CAROL))
    )
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not what was shown" in (error.details() or "")
    malformed = apb.DecideApprovalRequest(approval_id=approval_id, approve=True, shown_hash="abc")
    error = refusal(
        lambda: stub.DecideApproval(malformed, timeout=CALL_TIMEOUT, metadata=bearer(CAROL))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rows(database_url, run_id) == before

    # The CLI sends the hash `approvals show` printed; the decision records it.
    shown = run_cli(
        "approvals", "show", approval_id, "--address", plane.address, SUREFOOT_TOKEN=CAROL
    )
    assert f"content:   {approval.content_hash}" in shown.stdout.splitlines(), shown.stdout
    approved = run_cli(
        "approvals",
        "approve",
        approval_id,
        "--shown-hash",
        approval.content_hash,
        "--address",
        plane.address,
        SUREFOOT_TOKEN=CAROL,
    )
    assert approved.returncode == 0, approved.stderr
    (decided,) = events_of(read_history(stub, run_id), "APPROVAL_DECIDED")
    assert decided.principal == "carol"
    assert decided.data["content_hash"] == approval.content_hash
