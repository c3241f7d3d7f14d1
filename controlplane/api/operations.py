"""surefoot.v1.OperationService: durable redrives and run actions (run_actions.py), started,
followed, listed and cancelled.

Starting one writes the operation and its items in one transaction and wakes this control
plane's runner (dispatch/redrives.py); from then on it is rows that any control plane works
through. Everything an answer says is read from those rows.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import json_format
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from surefoot.v1 import operation_service_pb2 as ops_pb
from surefoot.v1 import operation_service_pb2_grpc

from controlplane import errors
from controlplane.api import convert, redrive_requests, request_ids
from controlplane.api.namespaces import checked_namespace
from controlplane.api.principal import Authenticator
from controlplane.api.run_actions import RunActions, describe, is_run_action, item_fields
from controlplane.dispatch.redrives import RedriveRunner
from controlplane.store import operation_queries as oq
from controlplane.store.database import reader

MAX_PAGE = 1000
MAX_REASON = 2000
# Operation ids are uuids (operations.id is 36 characters).
MAX_OPERATION_ID = 36
# How often a watch reads the operation again; its progress is counted from the database,
# which another control plane may be changing.
WATCH_SECONDS = 0.25

_STATES = {
    oq.RUNNING: ops_pb.OPERATION_STATE_RUNNING,
    oq.COMPLETED: ops_pb.OPERATION_STATE_COMPLETED,
    oq.CANCELLED: ops_pb.OPERATION_STATE_CANCELLED,
}
ITEM_STATES = {
    oq.PENDING: ops_pb.OPERATION_ITEM_STATE_PENDING,
    oq.EXCLUDED: ops_pb.OPERATION_ITEM_STATE_EXCLUDED,
    oq.RETRIED: ops_pb.OPERATION_ITEM_STATE_RUNNING,
    oq.SUCCEEDED: ops_pb.OPERATION_ITEM_STATE_SUCCEEDED,
    oq.FAILED_AGAIN: ops_pb.OPERATION_ITEM_STATE_FAILED_AGAIN,
    oq.NOT_RETRIED: ops_pb.OPERATION_ITEM_STATE_NOT_RETRIED,
    oq.ITEM_CANCELLED: ops_pb.OPERATION_ITEM_STATE_CANCELLED,
    oq.INTERRUPTED: ops_pb.OPERATION_ITEM_STATE_INTERRUPTED,
    oq.APPLIED: ops_pb.OPERATION_ITEM_STATE_APPLIED,
    oq.NOT_APPLICABLE: ops_pb.OPERATION_ITEM_STATE_NOT_APPLICABLE,
}
_ITEM_STATE_NAMES = {number: name for name, number in ITEM_STATES.items()}


class OperationService(operation_service_pb2_grpc.OperationServiceServicer):  # type: ignore[misc]
    def __init__(self, engine: Engine, auth: Authenticator, runner: RedriveRunner) -> None:
        self._engine = engine
        self._auth = auth
        self._runner = runner
        self._run_actions = RunActions(engine, auth, runner, operation_message)

    async def StartRedrive(
        self, request: ops_pb.StartRedriveRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.StartRedriveResponse:
        """Dry run: the plan, nothing written. Otherwise the operation, started or found.

        Raises:
            InvalidArgument: a bad selection, rate, comment or request id.
            FailedPrecondition: nothing to redrive (no match, or only unsafe ones).
        """
        checked = redrive_requests.checked(request)
        if request.dry_run:
            planned = await self._read(
                lambda c: redrive_requests.dry_run(c, checked, request.include_unsafe)
            )
            return ops_pb.StartRedriveResponse(plan=planned)
        principal = await self._auth.acting_principal(context)
        request_id = request.request_id or None
        if request_id is not None:
            found = await self._read(lambda c: oq.by_request_id(c, checked.namespace, request_id))
            if found is not None:
                return await self._existing(found)
        new = oq.NewRedrive(
            id=str(uuid.uuid4()),
            namespace=checked.namespace,
            request_id=request_id,
            created_by=principal,
            comment=request.comment,
            selection=checked.selection,
            rate_per_second=checked.rate,
            include_unsafe=request.include_unsafe,
            now=time.time(),
        )

        def create(connection: Connection) -> None:
            to_redrive = oq.create_redrive(connection, new, checked.where, checked.limit)
            if to_redrive == 0:
                planned = oq.planned_items(connection, new.id)
                raise _nothing_to_redrive(sum(p.count for p in planned))

        try:
            await self._write(create)
        except IntegrityError:
            # The same request id, started by a concurrent call a moment ago: that one.
            assert request_id is not None
            found = await self._read(lambda c: oq.by_request_id(c, checked.namespace, request_id))
            if found is None:
                raise
            return await self._existing(found)
        self._runner.wake()
        operation = await self._read(
            lambda c: operation_message(c, oq.get(c, new.namespace, new.id))
        )
        return ops_pb.StartRedriveResponse(plan=operation.plan, operation=operation)

    async def StartRunAction(
        self, request: ops_pb.StartRunActionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.StartRunActionResponse:
        return await self._run_actions.start(request, context)

    async def GetOperation(
        self, request: ops_pb.GetOperationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.GetOperationResponse:
        namespace, operation_id = _named(request)
        return ops_pb.GetOperationResponse(
            operation=await self._read(lambda c: _found(c, namespace, operation_id))
        )

    async def WatchOperation(
        self, request: ops_pb.WatchOperationRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ops_pb.WatchOperationResponse]:
        """The operation, then again at each change of it, until it is done."""
        namespace, operation_id = _named(request)
        last = b""
        while True:
            operation = await self._read(lambda c: _found(c, namespace, operation_id))
            seen = operation.SerializeToString(deterministic=True)
            if seen != last:
                last = seen
                yield ops_pb.WatchOperationResponse(operation=operation)
            if operation.done:
                return
            await asyncio.sleep(WATCH_SECONDS)

    async def CancelOperation(
        self, request: ops_pb.CancelOperationRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.CancelOperationResponse:
        """Cancelling a cancelled operation answers it as it is; a completed one is refused."""
        namespace, operation_id = _named(request)
        if len(request.reason) > MAX_REASON:
            raise errors.InvalidArgument.field("reason", f"is longer than {MAX_REASON} characters")
        principal = await self._auth.acting_principal(context)

        def cancel(connection: Connection) -> ops_pb.CancelOperationResponse:
            row = oq.get(connection, namespace, operation_id)
            if row is None:
                raise _no_operation(namespace, operation_id)
            cancelled = oq.cancel(connection, operation_id, principal, request.reason, time.time())
            if not cancelled and row.state == oq.COMPLETED:
                raise errors.FailedPrecondition(
                    f"operation {operation_id} has completed: there is nothing left to cancel"
                )
            # As this transaction leaves it: the answer a repeated request id gets again.
            return ops_pb.CancelOperationResponse(
                operation=_found(connection, namespace, operation_id)
            )

        key = request_ids.key_of(namespace, request, principal)
        response = await request_ids.written(
            self._engine, context, key, cancel, lambda made: made, ops_pb.CancelOperationResponse
        )
        self._runner.wake()
        return response

    async def ListOperations(
        self, request: ops_pb.ListOperationsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.ListOperationsResponse:
        namespace = checked_namespace(request.namespace)
        size = _page_size(request.page_size)

        def page(connection: Connection) -> ops_pb.ListOperationsResponse:
            rows, token = oq.list_page(
                connection,
                namespace,
                page_size=size,
                page_token=request.page_token,
                running_only=request.running_only,
            )
            return ops_pb.ListOperationsResponse(
                operations=[operation_message(connection, row) for row in rows],
                next_page_token=token,
            )

        try:
            return await self._read(page)
        except oq.BadPageToken as exc:
            raise errors.InvalidArgument.field("page_token", str(exc)) from None

    async def ListOperationItems(
        self, request: ops_pb.ListOperationItemsRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.ListOperationItemsResponse:
        namespace, operation_id = _named(request)
        size = _page_size(request.page_size)
        if request.state not in _ITEM_STATE_NAMES and request.state != 0:
            raise errors.InvalidArgument.field("state", f"unknown item state {request.state}")
        state = _ITEM_STATE_NAMES.get(request.state)

        def page(connection: Connection) -> ops_pb.ListOperationItemsResponse:
            if oq.get(connection, namespace, operation_id) is None:
                raise _no_operation(namespace, operation_id)
            rows, token = oq.items_page(
                connection,
                operation_id,
                state=state,
                page_size=size,
                page_token=request.page_token,
            )
            return ops_pb.ListOperationItemsResponse(
                items=[_item(row) for row in rows], next_page_token=token
            )

        try:
            return await self._read(page)
        except oq.BadPageToken as exc:
            raise errors.InvalidArgument.field("page_token", str(exc)) from None

    async def _existing(self, row: Any) -> ops_pb.StartRedriveResponse:
        operation = await self._read(lambda c: operation_message(c, row))
        return ops_pb.StartRedriveResponse(plan=operation.plan, operation=operation, existing=True)

    async def _read(self, work: Any) -> Any:
        def run() -> Any:
            with reader(self._engine).connect() as connection:
                return work(connection)

        return await asyncio.to_thread(run)

    async def _write(self, work: Any) -> Any:
        def run() -> Any:
            with self._engine.begin() as connection:
                return work(connection)

        return await asyncio.to_thread(run)


def operation_message(connection: Connection, row: Any) -> ops_pb.Operation:
    """The operation with its progress, counted from its items now."""
    counts = oq.item_counts(connection, row.id)
    window = oq.retry_window(connection, row.id)
    run_action = is_run_action(row.kind)
    # A run action's items were acted on, not retried: their times are shown as applied_at.
    first, last = (None, None) if run_action else window
    retried = sum(
        counts.get(state, 0)
        for state in (oq.RETRIED, oq.SUCCEEDED, oq.FAILED_AGAIN, oq.INTERRUPTED)
    )
    progress = ops_pb.OperationProgress(
        matched=sum(counts.values()),
        excluded=counts.get(oq.EXCLUDED, 0),
        pending=counts.get(oq.PENDING, 0),
        retried=retried,
        running=counts.get(oq.RETRIED, 0),
        succeeded=counts.get(oq.SUCCEEDED, 0),
        failed_again=counts.get(oq.FAILED_AGAIN, 0),
        not_retried=counts.get(oq.NOT_RETRIED, 0),
        cancelled=counts.get(oq.ITEM_CANCELLED, 0),
        interrupted=counts.get(oq.INTERRUPTED, 0),
        first_retry_at=convert.timestamp(first),
        last_retry_at=convert.timestamp(last),
    )
    selection = ops_pb.RedriveSelection()
    if not run_action:
        json_format.Parse(row.selection, selection)
    operation = ops_pb.Operation(
        id=row.id,
        namespace=row.namespace,
        kind=row.kind,
        state=_STATES.get(row.state, ops_pb.OPERATION_STATE_UNSPECIFIED),
        created_by=row.created_by,
        comment=row.comment,
        request_id=row.request_id or "",
        created_at=convert.timestamp(row.created_at),
        finished_at=convert.timestamp(row.finished_at),
        selection=selection,
        rate_per_second=row.rate_per_second,
        include_unsafe=row.include_unsafe,
        progress=progress,
        failures=[
            ops_pb.OperationFailure(
                error_type=f.error_type,
                error_signature=f.error_signature,
                count=f.count,
                sample_message=f.sample_message,
                sample_run_ids=f.sample_run_ids,
            )
            for f in oq.failures(connection, row.id)
        ],
        cancelled_by=row.cancelled_by or "",
        cancelled_at=convert.timestamp(row.cancelled_at),
        cancel_reason=row.cancel_reason or "",
        plan=None
        if run_action
        else redrive_requests.plan(oq.planned_items(connection, row.id), row.rate_per_second),
        done=row.finished_at is not None,
    )
    if run_action:
        describe(operation, row, counts, window)
    return operation


def _item(row: Any) -> ops_pb.OperationItem:
    item = ops_pb.OperationItem(
        run_id=row.run_id,
        node_id=row.node_id,
        step_type=row.step_type,
        step_version=row.step_version,
        idempotency=row.idempotency,
        state=ITEM_STATES.get(row.state, ops_pb.OPERATION_ITEM_STATE_UNSPECIFIED),
        attempts=row.attempts,
        retried_at=convert.timestamp(row.retried_at),
        settled_at=convert.timestamp(row.settled_at),
        error_type=row.error_type or "",
        error_message=row.error_message or "",
        reason=row.reason or "",
        seq=row.seq,
    )
    if row.workflow_name is not None:
        # A run action's: when it was acted on is applied_at, not a retry.
        item.ClearField("retried_at")
        item_fields(item, row)
    return item


def _found(connection: Connection, namespace: str, operation_id: str) -> ops_pb.Operation:
    row = oq.get(connection, namespace, operation_id)
    if row is None:
        raise _no_operation(namespace, operation_id)
    return operation_message(connection, row)


def _named(request: Any) -> tuple[str, str]:
    namespace = checked_namespace(request.namespace)
    if not request.operation_id:
        raise errors.InvalidArgument.field("operation_id", "is required")
    if len(request.operation_id) > MAX_OPERATION_ID:
        # Refused before a NOT_FOUND would echo it: a status message of megabytes is cut by
        # the client's metadata limit and arrives as a transport error, not as the answer.
        raise errors.InvalidArgument.field(
            "operation_id", f"is not an operation id (longer than {MAX_OPERATION_ID} characters)"
        )
    return namespace, request.operation_id


def _page_size(size: int) -> int:
    if not 0 <= size <= MAX_PAGE:
        raise errors.InvalidArgument.field("page_size", f"must be between 0 and {MAX_PAGE}")
    return size or 100


def _no_operation(namespace: str, operation_id: str) -> errors.NotFound:
    return errors.NotFound(f"operation {operation_id} not found in namespace {namespace!r}")


def _nothing_to_redrive(matched: int) -> errors.FailedPrecondition:
    if matched == 0:
        return errors.FailedPrecondition("the selection matches no dead letter: nothing to redrive")
    return errors.FailedPrecondition(
        f"all {matched} dead letters selected are steps declared idempotency none (they may "
        "have happened): set include_unsafe to redrive them"
    )
