"""Workflow definitions on WorkflowService: register, read, list, deprecate or reinstate."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from sqlalchemy import Connection
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert, request_ids
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.dispatch.starts import awaiting_evaluation, no_latest_yet
from controlplane.engine.definition import validate_definition
from controlplane.store import definitions as defs

MAX_REASON = 2000


async def register(
    backend: Backend, request: ws.RegisterDefinitionRequest, context: grpc.aio.ServicerContext
) -> ws.RegisterDefinitionResponse:
    namespace = checked_namespace(request.namespace)
    # Who may change what runs: on a server with an auth file, only a known caller.
    caller = await backend.auth.caller(context)
    key = request_ids.key_of(namespace, request, caller.principal)
    if not request.HasField("definition"):
        raise errors.InvalidArgument.field("definition", "is required")
    definition = request.definition
    catalog = backend.catalog.catalog_for(namespace)
    problems = await asyncio.to_thread(validate_definition, definition, catalog)
    if problems:
        label = f"{definition.name or '?'}@{definition.version or '?'}"
        summary = "; ".join(description for _, description in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise errors.InvalidArgument(f"definition {label} is invalid: {summary}{more}", problems)
    return await request_ids.written(
        backend.engine,
        context,
        key,
        lambda c: defs.register(c, namespace, definition),
        lambda made: ws.RegisterDefinitionResponse(info=info(made[0], 0), created=made[1]),
        ws.RegisterDefinitionResponse,
    )


async def get(
    backend: Backend, request: ws.GetDefinitionRequest, context: grpc.aio.ServicerContext
) -> ws.GetDefinitionResponse:
    namespace = checked_namespace(request.namespace)
    if not request.name:
        raise errors.InvalidArgument.field("name", "is required")

    latest = request.version in ("", "latest")

    def query(c: Connection) -> tuple[defs.DefinitionRow | None, bool, str]:
        row = defs.find(c, namespace, request.name, request.version)
        if row is not None or not latest:
            return row, False, ""
        awaiting = awaiting_evaluation(c, namespace, request.name)
        return row, not awaiting and defs.any_version(c, namespace, request.name), awaiting

    row, all_deprecated, awaiting = await backend.read(query)
    if awaiting:
        # Registered and readable by its version; only "latest" waits for the evaluation.
        raise errors.FailedPrecondition(
            no_latest_yet(request.name, awaiting, "name the version to read it")
        )
    if row is None:
        message = no_definition(request, namespace)
        if all_deprecated and request.version in ("", "latest"):
            message = f"every version of {request.name} is deprecated: name one to read it"
        raise errors.NotFound(message)
    return ws.GetDefinitionResponse(info=info(row, 0), definition=row.message())


async def list_all(
    backend: Backend, request: ws.ListDefinitionsRequest, context: grpc.aio.ServicerContext
) -> ws.ListDefinitionsResponse:
    namespace = checked_namespace(request.namespace)
    rows = await backend.read(lambda c: defs.list_with_counts(c, namespace, request.name))
    return ws.ListDefinitionsResponse(definitions=[info(r, n) for r, n in rows])


async def deprecate(
    backend: Backend, request: ws.DeprecateDefinitionRequest, context: grpc.aio.ServicerContext
) -> ws.DeprecateDefinitionResponse:
    namespace = checked_namespace(request.namespace)
    if not request.name:
        raise errors.InvalidArgument.field("name", "is required")
    if not request.version or request.version == "latest":
        raise errors.InvalidArgument.field(
            "version", "must name a version (latest moves when one is deprecated)"
        )
    if len(request.reason) > MAX_REASON:
        raise errors.InvalidArgument.field("reason", f"is longer than {MAX_REASON} characters")
    principal = await backend.auth.acting_principal(context)
    now = time.time()

    def change(c: Connection) -> ws.DeprecateDefinitionResponse:
        row = defs.find(c, namespace, request.name, request.version)
        if row is None:
            raise errors.NotFound(no_definition(request, namespace))
        changed_row, changed = defs.set_deprecated(
            c, row, not request.reinstate, principal, request.reason, now
        )
        in_flight = defs.in_flight(c, row.id)
        return ws.DeprecateDefinitionResponse(info=info(changed_row, in_flight), changed=changed)

    key = request_ids.key_of(namespace, request, principal)
    return await request_ids.written(
        backend.engine, context, key, change, lambda made: made, ws.DeprecateDefinitionResponse
    )


def info(row: defs.DefinitionRow, in_flight: int) -> ws.DefinitionInfo:
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


def no_definition(request: Any, namespace: str) -> str:
    name = getattr(request, "workflow_name", "") or getattr(request, "name", "")
    version = getattr(request, "workflow_version", "") or getattr(request, "version", "")
    label = f"{name}@{version}" if version and version != "latest" else name
    return f"workflow {label} is not registered in namespace {namespace!r}"
