"""Roles within a namespace: a viewer reads, an operator acts on runs, an approver decides,
an admin changes definitions; a worker credential keeps connector outcomes. Whoever lacks
the role is PERMISSION_DENIED (it may know the namespace) and nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot.v1 import worker_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_ADMIN,
    A_APPROVER,
    A_OPERATOR,
    A_VIEWER,
    HELD,
    TEAM_A,
    SecuredControlPlane,
    bearer,
    held_definition,
    refused,
    row_counts,
    start_held_run,
)

pytestmark = pytest.mark.postgres


def _denied(
    secured: SecuredControlPlane, token: str, calls: dict[str, tuple[Callable[..., Any], Any]]
) -> None:
    before = row_counts(secured.database_url)
    for name, (call, request) in calls.items():
        error = refused(call, request, bearer(token))
        assert error.code().name == "PERMISSION_DENIED", (name, error.details())
    assert row_counts(secured.database_url) == before


def test_a_viewer_reads_and_cannot_change_anything(secured: SecuredControlPlane) -> None:
    stub = secured.stub
    run_id = start_held_run(stub, TEAM_A)
    token = bearer(A_VIEWER)
    run = stub.GetRun(ws.GetRunRequest(namespace=TEAM_A, run_id=run_id), metadata=token)
    assert run.run.id == run_id
    assert stub.GetRunHistory(
        ws.GetRunHistoryRequest(namespace=TEAM_A, run_id=run_id), metadata=token
    ).events
    _denied(
        secured,
        A_VIEWER,
        {
            "start": (stub.StartRun, ws.StartRunRequest(namespace=TEAM_A, workflow_name=HELD)),
            "cancel": (stub.CancelRun, ws.CancelRunRequest(namespace=TEAM_A, run_id=run_id)),
            "event": (
                stub.SendEvent,
                apb.SendEventRequest(namespace=TEAM_A, event_name="e", correlation_key="k"),
            ),
            "retry": (
                stub.RetryStep,
                ws.RetryStepRequest(namespace=TEAM_A, run_id=run_id, node_id="sign"),
            ),
            "decide": (
                stub.DecideApproval,
                apb.DecideApprovalRequest(
                    namespace=TEAM_A, approval_id=f"{run_id}:sign", approve=True
                ),
            ),
            "register": (
                stub.RegisterDefinition,
                ws.RegisterDefinitionRequest(
                    namespace=TEAM_A, definition=held_definition("viewer-made")
                ),
            ),
        },
    )


def test_an_operator_runs_workflows_but_does_not_change_definitions_or_decide(
    secured: SecuredControlPlane,
) -> None:
    stub = secured.stub
    start_held_run(stub, TEAM_A)
    token = bearer(A_OPERATOR)
    started = stub.StartRun(
        ws.StartRunRequest(namespace=TEAM_A, workflow_name=HELD), metadata=token
    )
    _denied(
        secured,
        A_OPERATOR,
        {
            "register": (
                stub.RegisterDefinition,
                ws.RegisterDefinitionRequest(
                    namespace=TEAM_A, definition=held_definition("operator-made")
                ),
            ),
            "deprecate": (
                stub.DeprecateDefinition,
                ws.DeprecateDefinitionRequest(namespace=TEAM_A, name=HELD, version="1"),
            ),
            # Named by the approval (group:staff), but not an approver in team-a.
            "decide": (
                stub.DecideApproval,
                apb.DecideApprovalRequest(
                    namespace=TEAM_A, approval_id=f"{started.run_id}:sign", approve=True
                ),
            ),
        },
    )
    cancelled = stub.CancelRun(
        ws.CancelRunRequest(namespace=TEAM_A, run_id=started.run_id, reason="done"),
        metadata=token,
    )
    assert cancelled.run.id == started.run_id


def test_an_approver_decides_and_the_history_names_it(secured: SecuredControlPlane) -> None:
    stub = secured.stub
    run_id = start_held_run(stub, TEAM_A)
    decided = stub.DecideApproval(
        apb.DecideApprovalRequest(namespace=TEAM_A, approval_id=f"{run_id}:sign", approve=True),
        metadata=bearer(A_APPROVER),
    )
    assert decided.approval.decided_by == "abe"
    _denied(
        secured,
        A_APPROVER,
        {"start": (stub.StartRun, ws.StartRunRequest(namespace=TEAM_A, workflow_name=HELD))},
    )


def test_connector_outcomes_need_the_worker_role(secured: SecuredControlPlane) -> None:
    run_id = start_held_run(secured.stub, TEAM_A)
    outcomes = worker_service_pb2_grpc.ConnectorOutcomeServiceStub(secured.channel)
    begin = wpb.BeginCallRequest(
        namespace=TEAM_A, idempotency_key=f"{run_id}:sign", connector="surefoot.smtp", attempt=1
    )
    _denied(secured, A_OPERATOR, {"begin": (outcomes.BeginCall, begin)})
    # An admin holds every role of its namespace, the worker's included.
    answer = outcomes.BeginCall(begin, timeout=30, metadata=bearer(A_ADMIN))
    assert answer.state == wpb.CALL_RECORD_STATE_CLAIMED
