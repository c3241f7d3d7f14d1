"""Pausing and resuming a run on WorkflowService (engine/pausing.py says what a pause holds)."""

from __future__ import annotations

import grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert, request_ids
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.dispatch import operations as ops

# A reason is a sentence for the run's history, not a document.
MAX_REASON = 2000


async def pause(
    backend: Backend, request: ws.PauseRunRequest, context: grpc.aio.ServicerContext
) -> ws.PauseRunResponse:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if len(request.reason) > MAX_REASON:
        raise errors.InvalidArgument.field("reason", f"is longer than {MAX_REASON}")
    principal = await backend.auth.acting_principal(context)
    operation = ops.PauseRun(namespace, request.run_id, principal, reason=request.reason)
    return await request_ids.submitted(
        backend,
        context,
        request_ids.key_of(namespace, request, principal),
        operation,
        lambda committed: ws.PauseRunResponse(run=convert.run_detail(committed.view)),
        ws.PauseRunResponse,
    )


async def resume(
    backend: Backend, request: ws.ResumeRunRequest, context: grpc.aio.ServicerContext
) -> ws.ResumeRunResponse:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if len(request.reason) > MAX_REASON:
        raise errors.InvalidArgument.field("reason", f"is longer than {MAX_REASON}")
    principal = await backend.auth.acting_principal(context)
    operation = ops.PauseRun(
        namespace, request.run_id, principal, reason=request.reason, resume=True
    )
    return await request_ids.submitted(
        backend,
        context,
        request_ids.key_of(namespace, request, principal),
        operation,
        lambda committed: ws.ResumeRunResponse(run=convert.run_detail(committed.view)),
        ws.ResumeRunResponse,
    )
