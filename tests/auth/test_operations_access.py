"""OperationService under credentials: starting and cancelling a redrive is an operator's,
reading operations a viewer's; no role in the namespace is NOT_FOUND, no credential
UNAUTHENTICATED; every refusal leaves every table as it was."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import operation_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_OPERATOR,
    A_VIEWER,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
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
