"""ForkRun on WorkflowService (engine/forking.py says what a fork takes and does)."""

from __future__ import annotations

import grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import runs
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.dispatch import operations as ops

MAX_COMMENT = 2000


async def fork(
    backend: Backend, request: ws.ForkRunRequest, context: grpc.aio.ServicerContext
) -> ws.ForkRunResponse:
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if not request.from_node:
        raise errors.InvalidArgument.field("from_node", "is required")
    if len(request.request_id) > runs.MAX_REQUEST_ID:
        raise errors.InvalidArgument.field("request_id", f"is longer than {runs.MAX_REQUEST_ID}")
    if len(request.comment) > MAX_COMMENT:
        raise errors.InvalidArgument.field("comment", f"is longer than {MAX_COMMENT}")
    override = request.HasField("input_override")
    value = parse_json("input_override", request.input_override, empty={}) if override else None
    operation = ops.ForkRun(
        namespace,
        request.run_id,
        request.from_node,
        await backend.auth.acting_principal(context),
        input=value,
        override=override,
        request_id=request.request_id,
        comment=request.comment,
    )
    committed: ops.CommittedRun = await backend.committer.submit(operation)
    # Read again, as GetRun shows it: with its link to the parent and what it is blocked on.
    run = await runs.run_detail(backend, namespace, committed.state.id)
    return ws.ForkRunResponse(run=run, reused_nodes=operation.reused, created=operation.created)
