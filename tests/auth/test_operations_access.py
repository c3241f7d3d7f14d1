"""OperationService under credentials: starting and cancelling a redrive or a run action is an
operator's (abandoning or forking a selection an admin's), reading operations a viewer's; no
role in the namespace is NOT_FOUND, no credential UNAUTHENTICATED; every refusal leaves every
table as it was."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import operation_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_ADMIN,
    A_APPROVER,
    A_OPERATOR,
    A_VIEWER,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
    start_held_run,
)

pytestmark = pytest.mark.postgres

SELECTION = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="checkout"))


def redrive(namespace: str, dry_run: bool = True) -> opb.StartRedriveRequest:
    return opb.StartRedriveRequest(
        namespace=namespace, selection=SELECTION, rate_per_second=10, dry_run=dry_run
    )


def test_operations_need_their_role_in_the_namespace_and_refusals_write_nothing(
    secured: SecuredControlPlane,
) -> None:
    stub = operation_service_pb2_grpc.OperationServiceStub(secured.channel)
    before = row_counts(secured.database_url)
    cases = [
        (stub.StartRedrive, redrive(TEAM_A), None, grpc.StatusCode.UNAUTHENTICATED),
        # Even a dry run is an operator's: it is the first half of acting.
        (stub.StartRedrive, redrive(TEAM_A), A_VIEWER, grpc.StatusCode.PERMISSION_DENIED),
        (stub.StartRedrive, redrive(TEAM_B), A_OPERATOR, grpc.StatusCode.NOT_FOUND),
        (
            stub.CancelOperation,
            opb.CancelOperationRequest(namespace=TEAM_A, operation_id="x"),
            A_VIEWER,
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            stub.GetOperation,
            opb.GetOperationRequest(namespace=TEAM_B, operation_id="x"),
            A_VIEWER,
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            stub.ListOperations,
            opb.ListOperationsRequest(namespace=TEAM_B),
            A_OPERATOR,
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            stub.ListOperationItems,
            opb.ListOperationItemsRequest(namespace=TEAM_B, operation_id="x"),
            A_VIEWER,
            grpc.StatusCode.NOT_FOUND,
        ),
        # The operator may start one; with nothing matching there is nothing to start.
        (
            stub.StartRedrive,
            redrive(TEAM_A, False),
            A_OPERATOR,
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
    ]
    for call, request, token, code in cases:
        metadata = bearer(token) if token else ()
        error = refused(call, request, metadata)
        assert error.code() == code, (type(request).__name__, token, error)
    assert row_counts(secured.database_url) == before

    plan = stub.StartRedrive(redrive(TEAM_A), timeout=30, metadata=bearer(A_OPERATOR)).plan
    assert (plan.matched, plan.to_redrive) == (0, 0)
    listed = stub.ListOperations(
        opb.ListOperationsRequest(namespace=TEAM_A), timeout=30, metadata=bearer(A_VIEWER)
    )
    assert list(listed.operations) == []
    assert row_counts(secured.database_url) == before


def run_action(
    namespace: str, kind: opb.RunActionType.ValueType, dry_run: bool = False
) -> opb.StartRunActionRequest:
    action = opb.RunAction(type=kind, from_node="sign" if kind == opb.RUN_ACTION_TYPE_FORK else "")
    return opb.StartRunActionRequest(
        namespace=namespace,
        selection=opb.RunSelection(filter=ws.RunFilter(workflow_name="batch-held")),
        action=action,
        rate_per_second=100,
        dry_run=dry_run,
    )


def test_run_actions_are_an_operators_and_abandon_or_fork_an_admins(
    secured: SecuredControlPlane,
) -> None:
    stub = operation_service_pb2_grpc.OperationServiceStub(secured.channel)
    runs = [start_held_run(secured.stub, TEAM_A, "batch-held") for _ in range(2)]
    pause, abandon = opb.RUN_ACTION_TYPE_PAUSE, opb.RUN_ACTION_TYPE_ABANDON
    fork = opb.RUN_ACTION_TYPE_FORK
    before = row_counts(secured.database_url)
    cases = [
        (run_action(TEAM_A, pause), None, grpc.StatusCode.UNAUTHENTICATED),
        # Even a dry run is an operator's: it is the first half of acting.
        (run_action(TEAM_A, pause, dry_run=True), A_VIEWER, grpc.StatusCode.PERMISSION_DENIED),
        (run_action(TEAM_A, pause), A_VIEWER, grpc.StatusCode.PERMISSION_DENIED),
        (run_action(TEAM_A, pause), A_APPROVER, grpc.StatusCode.PERMISSION_DENIED),
        (run_action(TEAM_B, pause), A_OPERATOR, grpc.StatusCode.NOT_FOUND),
        # Compensating, or executing steps again, over a selection: an admin's.
        (run_action(TEAM_A, abandon), A_OPERATOR, grpc.StatusCode.PERMISSION_DENIED),
        (run_action(TEAM_A, fork), A_OPERATOR, grpc.StatusCode.PERMISSION_DENIED),
    ]
    for request, token, code in cases:
        metadata = bearer(token) if token else ()
        error = refused(stub.StartRunAction, request, metadata)
        assert error.code() == code, (request.action.type, token, error)
    assert row_counts(secured.database_url) == before

    # The operator may plan an abandon, and pause; an admin may abandon.
    plan = stub.StartRunAction(
        run_action(TEAM_A, abandon, dry_run=True), timeout=30, metadata=bearer(A_OPERATOR)
    ).plan
    assert (plan.matched, plan.applicable) == (2, 2)
    paused = stub.StartRunAction(
        run_action(TEAM_A, pause), timeout=30, metadata=bearer(A_OPERATOR)
    ).operation
    assert paused.created_by == "otto" and paused.run_plan.applicable == 2
    abandoned = stub.StartRunAction(
        run_action(TEAM_A, abandon), timeout=30, metadata=bearer(A_ADMIN)
    ).operation
    assert abandoned.created_by == "ann"
    got = stub.GetOperation(
        opb.GetOperationRequest(namespace=TEAM_A, operation_id=abandoned.id),
        timeout=30,
        metadata=bearer(A_VIEWER),
    ).operation
    assert got.kind == "abandon-runs" and sorted(runs) == sorted(
        i.run_id
        for i in stub.ListOperationItems(
            opb.ListOperationItemsRequest(namespace=TEAM_A, operation_id=abandoned.id),
            timeout=30,
            metadata=bearer(A_VIEWER),
        ).items
    )
