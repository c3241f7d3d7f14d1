"""Approvals on WorkflowService: list, show, decide.

Every approval served carries the hash of what it shows (`content_hash`), and a decision may
name the hash of what the approver was shown (`shown_hash`).
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from sqlalchemy import Connection, Row
from surefoot.v1 import approval_pb2 as apb

from controlplane import errors
from controlplane.api import convert, payloads, request_ids
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.audit.content import shown_hash
from controlplane.dispatch import operations as ops
from controlplane.store import approval_queries

MAX_PAGE = 1000
_HASH = re.compile(r"^[0-9a-f]{64}$")


def served(row: Any) -> apb.Approval:
    """An approvals row (a mapping) as the API serves it, with the hash of its content."""
    approval = convert.approval(row)
    approval.content_hash = shown_hash(approval)
    return approval


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
            approvers=auth.identities(request.approver, c) if request.approver else (),
            page_size=request.page_size or 100,
            page_token=request.page_token,
        )

    try:
        rows, token = await backend.read(query)
    except ValueError as exc:
        raise errors.InvalidArgument.field("page_token", str(exc)) from None
    return apb.ListApprovalsResponse(
        approvals=[served(r._mapping) for r in rows], next_page_token=token
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
    return apb.GetApprovalResponse(approval=served(row._mapping))


async def decide(
    backend: Backend, request: apb.DecideApprovalRequest, context: grpc.aio.ServicerContext
) -> apb.DecideApprovalResponse:
    namespace = checked_namespace(request.namespace)
    if not request.approval_id:
        raise errors.InvalidArgument.field("approval_id", "is required")
    if request.shown_hash and not _HASH.fullmatch(request.shown_hash):
        raise errors.InvalidArgument.field(
            "shown_hash", "must be an approval's content_hash: 64 lowercase hex digits"
        )
    caller = await backend.auth.caller(context)
    if not caller.authenticated:
        raise errors.PermissionDenied(
            "deciding an approval needs an authenticated caller (a bearer token)"
        )
    has_output = request.HasField("output")
    # An AI node's review is approved with the output the node should have had (law 7: the
    # principal and the output are the decision's history event).
    operation = ops.DecideApproval(
        namespace,
        request.approval_id,
        request.approve,
        request.comment,
        caller.principal,
        caller.groups,
        request.shown_hash,
        output=payloads.parse_json("output", request.output) if has_output else None,
        has_output=has_output,
    )
    return await request_ids.submitted(
        backend,
        context,
        request_ids.key_of(namespace, request, caller.principal),
        operation,
        lambda row: apb.DecideApprovalResponse(approval=served(row)),
        apb.DecideApprovalResponse,
    )
