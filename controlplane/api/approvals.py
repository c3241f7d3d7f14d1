"""Approvals on WorkflowService: list, show, decide."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy import Connection, Row
from surefoot.v1 import approval_pb2 as apb

from controlplane import errors
from controlplane.api import convert
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.dispatch import operations as ops
from controlplane.store import approval_queries

MAX_PAGE = 1000


async def list_page(
    backend: Backend, request: apb.ListApprovalsRequest, context: grpc.aio.ServicerContext
) -> apb.ListApprovalsResponse:
    namespace = checked_namespace(request.namespace)
    if not 0 <= request.page_size <= MAX_PAGE:
        raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")
    statuses = []
    for index, status in enumerate(request.statuses):
        if status not in apb.ApprovalStatus.values() or status == 0:
            raise errors.InvalidArgument.field(f"statuses[{index}]", "is not an approval status")
        statuses.append(apb.ApprovalStatus.Name(status).removeprefix("APPROVAL_STATUS_"))
    auth = backend.auth

    def query(c: Connection) -> tuple[list[Row[Any]], str]:
        return approval_queries.list_approvals(
            c,
            namespace,
            statuses=statuses or ["PENDING"],
            workflow_name=request.workflow_name,
            approvers=auth.identities(request.approver) if request.approver else (),
            page_size=request.page_size or 100,
            page_token=request.page_token,
        )

    try:
        rows, token = await backend.read(query)
    except ValueError as exc:
        raise errors.InvalidArgument.field("page_token", str(exc)) from None
    return apb.ListApprovalsResponse(
        approvals=[convert.approval(r._mapping) for r in rows], next_page_token=token
    )


async def get(
    backend: Backend, request: apb.GetApprovalRequest, context: grpc.aio.ServicerContext
) -> apb.GetApprovalResponse:
    namespace = checked_namespace(request.namespace)
    row = await backend.read(
        lambda c: approval_queries.get_approval(c, namespace, request.approval_id)
    )
    if row is None:
        raise errors.NotFound(
            f"approval {request.approval_id} not found in namespace {namespace!r}"
        )
    return apb.GetApprovalResponse(approval=convert.approval(row._mapping))


async def decide(
    backend: Backend, request: apb.DecideApprovalRequest, context: grpc.aio.ServicerContext
) -> apb.DecideApprovalResponse:
    namespace = checked_namespace(request.namespace)
    if not request.approval_id:
        raise errors.InvalidArgument.field("approval_id", "is required")
    caller = await backend.auth.caller(context)
    if not caller.authenticated:
        raise errors.PermissionDenied(
            "deciding an approval needs an authenticated caller (a bearer token)"
        )
    operation = ops.DecideApproval(
        namespace,
        request.approval_id,
        request.approve,
        request.comment,
        caller.principal,
        caller.groups,
    )
    row = await backend.committer.submit(operation)
    return apb.DecideApprovalResponse(approval=convert.approval(row))
