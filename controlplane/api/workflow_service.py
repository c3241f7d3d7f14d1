"""surefoot.v1.WorkflowService: definitions and runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from sqlalchemy import Connection, Engine
from surefoot.v1 import run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.api import convert
from controlplane.api.approvals import ApprovalRpcs
from controlplane.api.dead_letters import DeadLetterRpcs
from controlplane.api.errors import abort, invalid_argument, invalid_field
from controlplane.api.namespaces import namespace_of
from controlplane.api.payloads import json_value
from controlplane.api.principal import Authenticator, principal_of
from controlplane.dispatch import operations as ops
from controlplane.dispatch.committer import Committer
from controlplane.engine.definition import validate_definition
from controlplane.store import definitions as defs
from controlplane.store import run_queries
from controlplane.store.database import reader
from controlplane.store.step_types import StepCatalogCache

T = TypeVar("T")

MAX_PAGE = 1000
MAX_REQUEST_ID = 200
MAX_REASON = 2000


class WorkflowService(
    ApprovalRpcs, DeadLetterRpcs, workflow_service_pb2_grpc.WorkflowServiceServicer
):
    def __init__(
        self,
        engine: Engine,
        committer: Committer,
        catalog: StepCatalogCache,
        auth: Authenticator | None = None,
    ) -> None:
        self._engine = engine
        self._committer = committer
        self._catalog = catalog
        self._auth = auth or Authenticator()

    async def _read(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with reader(self._engine).connect() as connection:
                return work(connection)

        return await asyncio.to_thread(run)

    async def _write(self, work: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self._engine.begin() as connection:
                return work(connection)

        return await asyncio.to_thread(run)

    # -- definitions ---------------------------------------------------------------------

    async def RegisterDefinition(
        self, request: ws.RegisterDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> ws.RegisterDefinitionResponse:
        namespace = await namespace_of(context, request.namespace)
        # Who may change what runs: on a server with an auth file, only a known caller.
        await self._auth.caller(context)
        if not request.HasField("definition"):
            await invalid_field(context, "definition", "is required")
        definition = request.definition
        catalog = self._catalog.catalog_for(namespace)
        problems = await asyncio.to_thread(validate_definition, definition, catalog)
        if problems:
            label = f"{definition.name or '?'}@{definition.version or '?'}"
            summary = "; ".join(description for _, description in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            await invalid_argument(
                context, f"definition {label} is invalid: {summary}{more}", problems
            )
        try:
            row, created = await self._write(lambda c: defs.register(c, namespace, definition))
        except defs.VersionConflict as exc:
            await abort(context, grpc.StatusCode.ALREADY_EXISTS, str(exc))
        return ws.RegisterDefinitionResponse(info=_info(row, 0), created=created)

    async def GetDefinition(
        self, request: ws.GetDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> ws.GetDefinitionResponse:
        namespace = await namespace_of(context, request.namespace)
        if not request.name:
            await invalid_field(context, "name", "is required")

        def query(c: Connection) -> tuple[defs.DefinitionRow | None, bool]:
            row = defs.find(c, namespace, request.name, request.version)
            return row, row is None and defs.any_version(c, namespace, request.name)

        row, all_deprecated = await self._read(query)
        if row is None:
            message = _no_definition(request, namespace)
            if all_deprecated and request.version in ("", "latest"):
                message = f"every version of {request.name} is deprecated: name one to read it"
            await abort(context, grpc.StatusCode.NOT_FOUND, message)
        return ws.GetDefinitionResponse(info=_info(row, 0), definition=row.message())

    async def ListDefinitions(
        self, request: ws.ListDefinitionsRequest, context: grpc.aio.ServicerContext
    ) -> ws.ListDefinitionsResponse:
        namespace = await namespace_of(context, request.namespace)
        rows = await self._read(lambda c: defs.list_with_counts(c, namespace, request.name))
        return ws.ListDefinitionsResponse(definitions=[_info(r, n) for r, n in rows])

    async def DeprecateDefinition(
        self, request: ws.DeprecateDefinitionRequest, context: grpc.aio.ServicerContext
    ) -> ws.DeprecateDefinitionResponse:
        namespace = await namespace_of(context, request.namespace)
        if not request.name:
            await invalid_field(context, "name", "is required")
        if not request.version or request.version == "latest":
            await invalid_field(
                context, "version", "must name a version (latest moves when one is deprecated)"
            )
        if len(request.reason) > MAX_REASON:
            await invalid_field(context, "reason", f"is longer than {MAX_REASON} characters")
        caller = await self._auth.caller(context)
        principal = caller.principal if caller.authenticated else principal_of(context)
        now = time.time()

        def change(c: Connection) -> tuple[defs.DefinitionRow, bool, int] | None:
            row = defs.find(c, namespace, request.name, request.version)
            if row is None:
                return None
            changed_row, changed = defs.set_deprecated(
                c, row, not request.reinstate, principal, request.reason, now
            )
            return changed_row, changed, defs.in_flight(c, row.id)

        outcome = await self._write(change)
        if outcome is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, _no_definition(request, namespace))
        row, changed, in_flight = outcome
        return ws.DeprecateDefinitionResponse(info=_info(row, in_flight), changed=changed)

    # -- runs ----------------------------------------------------------------------------

    async def StartRun(
        self, request: ws.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> ws.StartRunResponse:
        namespace = await namespace_of(context, request.namespace)
        if not request.workflow_name:
            await invalid_field(context, "workflow_name", "is required")
        if len(request.request_id) > MAX_REQUEST_ID:
            await invalid_field(context, "request_id", f"is longer than {MAX_REQUEST_ID}")
        value = await json_value(context, "input", request.input, empty={})
        caller = await self._auth.caller(context)
        operation = ops.StartRun(
            namespace,
            request.workflow_name,
            request.workflow_version,
            value,
            request.request_id,
            caller.principal if caller.authenticated else principal_of(context),
        )
        try:
            started: ops.StartedRun = await self._committer.submit(operation)
        except ops.NotFound:
            await abort(context, grpc.StatusCode.NOT_FOUND, _no_definition(request, namespace))
        except ops.Conflict as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ops.InvalidInput as exc:
            violations = [
                ("input" + ("" if where == "/" else where.replace("/", ".")), message)
                for where, message in exc.problems
            ]
            await invalid_argument(context, str(exc), violations)
        return ws.StartRunResponse(
            run_id=started.run_id,
            created=started.created,
            workflow_version=started.workflow_version,
        )

    async def GetRun(
        self, request: ws.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> ws.GetRunResponse:
        namespace = await namespace_of(context, request.namespace)
        view = await self._read(lambda c: run_queries.get_run(c, namespace, request.run_id))
        if view is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, _no_run(request.run_id, namespace))
        return ws.GetRunResponse(run=convert.run_detail(view))

    async def ListRuns(
        self, request: ws.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> ws.ListRunsResponse:
        namespace = await namespace_of(context, request.namespace)
        if not 0 <= request.page_size <= MAX_PAGE:
            await invalid_field(context, "page_size", f"must be between 0 and {MAX_PAGE}")
        statuses = []
        for index, status in enumerate(request.statuses):
            if status == run_pb2.RUN_STATUS_UNSPECIFIED or status not in run_pb2.RunStatus.values():
                await invalid_field(context, f"statuses[{index}]", "is not a run status")
            statuses.append(run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_"))

        def query(c: Connection) -> tuple[list[Any], str]:
            return run_queries.list_runs(
                c,
                namespace,
                workflow_name=request.workflow_name,
                workflow_version=request.workflow_version,
                statuses=statuses,
                page_size=request.page_size or 100,
                page_token=request.page_token,
            )

        try:
            rows, token = await self._read(query)
        except run_queries.BadPageToken as exc:
            await invalid_field(context, "page_token", str(exc))
        return ws.ListRunsResponse(
            runs=[convert.run_summary(r) for r in rows], next_page_token=token
        )

    async def GetRunHistory(
        self, request: ws.GetRunHistoryRequest, context: grpc.aio.ServicerContext
    ) -> ws.GetRunHistoryResponse:
        namespace = await namespace_of(context, request.namespace)
        if request.after_seq < 0 or request.limit < 0:
            await invalid_field(context, "after_seq", "after_seq and limit must not be negative")

        def query(c: Connection) -> list[Any] | None:
            if not run_queries.run_exists(c, namespace, request.run_id):
                return None
            return run_queries.read_history(c, request.run_id, request.after_seq, request.limit)

        rows = await self._read(query)
        if rows is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, _no_run(request.run_id, namespace))
        return ws.GetRunHistoryResponse(events=[convert.history_event(r) for r in rows])

    async def CancelRun(
        self, request: ws.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> ws.CancelRunResponse:
        namespace = await namespace_of(context, request.namespace)
        if not request.run_id:
            await invalid_field(context, "run_id", "is required")
        caller = await self._auth.caller(context)
        principal = caller.principal if caller.authenticated else principal_of(context)
        operation = ops.CancelRun(
            namespace, request.run_id, request.reason, principal, compensate=request.compensate
        )
        try:
            await self._committer.submit(operation)
        except ops.NotFound as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except ops.Conflict as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        view = await self._read(lambda c: run_queries.get_run(c, namespace, request.run_id))
        assert view is not None
        return ws.CancelRunResponse(run=convert.run_detail(view))


def _info(row: defs.DefinitionRow, in_flight: int) -> ws.DefinitionInfo:
    return ws.DefinitionInfo(
        namespace=row.namespace,
        name=row.name,
        version=row.version,
        content_hash=row.content_hash,
        sequence=row.sequence,
        deprecated=row.deprecated,
        runs_in_flight=in_flight,
        registered_at=convert.timestamp(row.registered_at),
        deprecated_by=row.deprecated_by,
        deprecated_at=convert.timestamp(row.deprecated_at),
        deprecation_reason=row.deprecation_reason,
    )


def _no_definition(request: Any, namespace: str) -> str:
    name = getattr(request, "workflow_name", "") or getattr(request, "name", "")
    version = getattr(request, "workflow_version", "") or getattr(request, "version", "")
    label = f"{name}@{version}" if version and version != "latest" else name
    return f"workflow {label} is not registered in namespace {namespace!r}"


def _no_run(run_id: str, namespace: str) -> str:
    return f"run {run_id} not found in namespace {namespace!r}"
