"""Approvals and events on WorkflowService: list, show, decide; send an event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy import Connection, Row
from surefoot.v1 import approval_pb2 as apb

from controlplane.api import convert
from controlplane.api.errors import abort, invalid_field
from controlplane.api.namespaces import namespace_of
from controlplane.api.payloads import json_value
from controlplane.api.principal import Authenticator
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.engine.definition import NAME_PATTERN
from controlplane.store import approval_queries

T = TypeVar("T")
MAX_PAGE = 1000
MAX_KEY = 500


class ApprovalRpcs:
    """Mixed into WorkflowService; expects `_read`, `_committer` and `_auth`."""

    _committer: Committer
    _auth: Authenticator
    _read: Callable[[Callable[[Connection], Any]], Awaitable[Any]]

    async def ListApprovals(
        self, request: apb.ListApprovalsRequest, context: grpc.aio.ServicerContext
    ) -> apb.ListApprovalsResponse:
        namespace = await namespace_of(context, request.namespace)
        if not 0 <= request.page_size <= MAX_PAGE:
            await invalid_field(context, "page_size", f"must be between 0 and {MAX_PAGE}")
        statuses = []
        for index, status in enumerate(request.statuses):
            if status not in apb.ApprovalStatus.values() or status == 0:
                await invalid_field(context, f"statuses[{index}]", "is not an approval status")
            statuses.append(apb.ApprovalStatus.Name(status).removeprefix("APPROVAL_STATUS_"))

        def query(c: Connection) -> tuple[list[Row[Any]], str]:
            return approval_queries.list_approvals(
                c,
                namespace,
                statuses=statuses or ["PENDING"],
                workflow_name=request.workflow_name,
                approvers=self._auth.identities(request.approver) if request.approver else (),
                page_size=request.page_size or 100,
                page_token=request.page_token,
            )

        try:
            rows, token = await self._read(query)
        except ValueError as exc:
            await invalid_field(context, "page_token", str(exc))
        return apb.ListApprovalsResponse(
            approvals=[convert.approval(r._mapping) for r in rows], next_page_token=token
        )

    async def GetApproval(
        self, request: apb.GetApprovalRequest, context: grpc.aio.ServicerContext
    ) -> apb.GetApprovalResponse:
        namespace = await namespace_of(context, request.namespace)
        row = await self._read(
            lambda c: approval_queries.get_approval(c, namespace, request.approval_id)
        )
        if row is None:
            await abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f"approval {request.approval_id} not found in namespace {namespace!r}",
            )
        return apb.GetApprovalResponse(approval=convert.approval(row._mapping))

    async def DecideApproval(
        self, request: apb.DecideApprovalRequest, context: grpc.aio.ServicerContext
    ) -> apb.DecideApprovalResponse:
        namespace = await namespace_of(context, request.namespace)
        if not request.approval_id:
            await invalid_field(context, "approval_id", "is required")
        caller = await self._auth.caller(context)
        if not caller.authenticated:
            await abort(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "deciding an approval needs an authenticated caller (a bearer token)",
            )
        operation = ops.DecideApproval(
            namespace,
            request.approval_id,
            request.approve,
            request.comment,
            caller.principal,
            caller.groups,
        )
        try:
            row = await self._committer.submit(operation)
        except ops.NotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except ops.Conflict as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ops.PermissionDenied as exc:
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        return apb.DecideApprovalResponse(approval=convert.approval(row))

    async def SendEvent(
        self, request: apb.SendEventRequest, context: grpc.aio.ServicerContext
    ) -> apb.SendEventResponse:
        namespace = await namespace_of(context, request.namespace)
        # An event moves runs on: on a server with an auth file, only a known caller sends one.
        await self._auth.caller(context)
        if not NAME_PATTERN.match(request.event_name):
            await invalid_field(context, "event_name", "must be 1-200 letters, digits, . _ -")
        if not request.correlation_key or len(request.correlation_key) > MAX_KEY:
            await invalid_field(context, "correlation_key", f"must be 1-{MAX_KEY} characters")
        if len(request.event_id) > 200:
            await invalid_field(context, "event_id", "is longer than 200")
        payload = await json_value(context, "payload", request.payload)
        sent: ops.SentEvent = await self._committer.submit(
            ops.SendEvent(
                namespace,
                request.event_name,
                request.correlation_key,
                payload,
                request.event_id,
            )
        )
        return apb.SendEventResponse(
            delivered_to=sent.delivered_to, stored=sent.stored, event_id=sent.event_id
        )
