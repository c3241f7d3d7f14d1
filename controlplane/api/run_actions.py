"""StartRunAction: cancel, abandon, pause, resume or fork the runs a selection matches, as a
durable operation that the operation runner (dispatch/redrives.py) works through at its rate.

Starting one writes the operation and one item per selected run in one transaction (the
runs the action does not apply to settled already, with the reason) and wakes this control
plane's runner. GetOperation and the rest of OperationService show it like a redrive, with
the fields of a run action that `describe` fills in.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import json_format
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError
from surefoot.v1 import operation_service_pb2 as ops_pb

from controlplane import errors
from controlplane.api import convert, run_action_requests
from controlplane.api.run_action_requests import RunActionRequest
from controlplane.auth.authenticator import Authenticator
from controlplane.auth.caller import Role
from controlplane.dispatch.operations import run_action_item as actions
from controlplane.dispatch.operations.run_action_item import RunActionSpec
from controlplane.dispatch.redrives import RedriveRunner
from controlplane.store import operation_queries as oq
from controlplane.store import run_action_queries as raq
from controlplane.store.database import reader
from controlplane.store.definitions import DefinitionCache

# Each run these act on gets a business action: compensations that undo what its steps did,
# or steps executed again with new idempotency keys (a charge charges again). One run at a
# time is an operator's call; the same over a selection of thousands is an admin's.
ADMIN_ACTIONS = frozenset({actions.ABANDON, actions.FORK})


def is_run_action(kind: str) -> bool:
    return kind in actions.ACTION_OF_KIND


class RunActions:
    """StartRunAction of OperationService, with what it shares with the servicer."""

    def __init__(
        self,
        engine: Engine,
        auth: Authenticator,
        runner: RedriveRunner,
        show: Callable[[Connection, Any], ops_pb.Operation],
    ) -> None:
        self._engine = engine
        self._auth = auth
        self._runner = runner
        # The servicer's Operation message of a row (operations.operation_message).
        self._show = show
        # Forks check their node against each selected run's version.
        self._definitions = DefinitionCache(engine)

    async def start(
        self, request: ops_pb.StartRunActionRequest, context: grpc.aio.ServicerContext
    ) -> ops_pb.StartRunActionResponse:
        """Dry run: the plan, nothing written. Otherwise the operation, started or found.

        Raises:
            InvalidArgument: a bad selection, action, rate, comment or request id.
            PermissionDenied: abandon or fork by a caller who is not admin.
            AlreadyExists: the request id started another operation.
            FailedPrecondition: no run selected, or none the action applies to.
        """
        checked = run_action_requests.checked(request)
        if request.dry_run:
            planned = await self._read(lambda c: self._plan(c, checked))
            return ops_pb.StartRunActionResponse(plan=planned)
        if checked.spec.action in ADMIN_ACTIONS:
            caller = await self._auth.caller(context)
            caller.require(checked.namespace, Role.ADMIN)
        principal = await self._auth.acting_principal(context)
        request_id = request.request_id or None
        if request_id is not None:
            found = await self._read(lambda c: oq.by_request_id(c, checked.namespace, request_id))
            if found is not None:
                return await self._existing(found, checked, request)
        new_id = str(uuid.uuid4())

        def create(connection: Connection) -> None:
            selected = list(
                run_action_requests.selected_runs(connection, checked, self._definitions)
            )
            planned = run_action_requests.plan(selected, checked.rate)
            if planned.applicable == 0:
                raise run_action_requests.nothing_to_do(planned, checked.spec)
            new = raq.NewRunAction(
                id=new_id,
                namespace=checked.namespace,
                kind=checked.spec.kind,
                request_id=request_id,
                created_by=principal,
                comment=request.comment,
                selection=checked.selection,
                action=checked.spec.to_json(),
                plan=json_format.MessageToJson(planned, indent=None, sort_keys=True),
                rate_per_second=checked.rate,
                now=time.time(),
            )
            raq.create_run_action(connection, new, selected)

        try:
            await self._write(create)
        except IntegrityError:
            # The same request id, started by a concurrent call a moment ago: that one.
            if request_id is None:
                raise
            found = await self._read(lambda c: oq.by_request_id(c, checked.namespace, request_id))
            if found is None:
                raise
            return await self._existing(found, checked, request)
        self._runner.wake()
        operation = await self._read(lambda c: self._message(c, checked.namespace, new_id))
        return ops_pb.StartRunActionResponse(plan=operation.run_plan, operation=operation)

    def _plan(self, connection: Connection, checked: RunActionRequest) -> ops_pb.RunActionPlan:
        selected = list(run_action_requests.selected_runs(connection, checked, self._definitions))
        return run_action_requests.plan(selected, checked.rate)

    async def _existing(
        self, row: Any, checked: RunActionRequest, request: ops_pb.StartRunActionRequest
    ) -> ops_pb.StartRunActionResponse:
        same = (
            row.kind == checked.spec.kind
            and row.selection == checked.selection
            and row.action == checked.spec.to_json()
            and row.rate_per_second == checked.rate
            and row.comment == request.comment
        )
        if not same:
            raise errors.AlreadyExists(
                f"request id {request.request_id!r} started another operation ({row.kind} "
                f"{row.id}): a new request needs a new id"
            )
        operation = await self._read(lambda c: self._message(c, row.namespace, row.id))
        return ops_pb.StartRunActionResponse(
            plan=operation.run_plan, operation=operation, existing=True
        )

    def _message(
        self, connection: Connection, namespace: str, operation_id: str
    ) -> ops_pb.Operation:
        return self._show(connection, oq.get(connection, namespace, operation_id))

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


def describe(
    operation: ops_pb.Operation, row: Any, counts: dict[str, int], window: tuple[Any, Any]
) -> None:
    """Fill in a run action's selection, action, plan and progress (`counts`: its items by
    state; `window`: when the first and last run were acted on)."""
    json_format.Parse(row.selection, operation.run_selection)
    operation.action.CopyFrom(action_message(RunActionSpec.from_json(row.action)))
    if row.plan:
        json_format.Parse(row.plan, operation.run_plan)
    progress = operation.progress
    progress.applied = counts.get(oq.APPLIED, 0)
    progress.not_applicable = counts.get(oq.NOT_APPLICABLE, 0)
    first, last = window
    if first is not None:
        progress.first_applied_at.FromDatetime(first)
        progress.last_applied_at.FromDatetime(last)


def action_message(spec: RunActionSpec) -> ops_pb.RunAction:
    message = ops_pb.RunAction(
        type=run_action_requests.TYPES[spec.action],  # type: ignore[arg-type]
        from_node=spec.from_node,
    )
    if spec.override:
        message.input_override.CopyFrom(convert.payload(spec.input))
    return message


def item_fields(item: ops_pb.OperationItem, row: Any) -> None:
    """A run action's item: its run's version, when it was acted on, a fork's run."""
    item.workflow_name = row.workflow_name or ""
    item.workflow_version = row.workflow_version or ""
    item.fork_run_id = row.fork_run_id or ""
    if row.retried_at is not None:
        item.applied_at.FromDatetime(row.retried_at)
