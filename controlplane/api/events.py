"""Events on WorkflowService: a named event for a correlation key moves waiting runs on."""

from __future__ import annotations

import grpc
from surefoot.v1 import approval_pb2 as apb

from controlplane import errors
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.api.payloads import parse_json
from controlplane.dispatch import operations as ops
from controlplane.engine.definition import NAME_PATTERN

MAX_KEY = 500
MAX_EVENT_ID = 200


async def send(
    backend: Backend, request: apb.SendEventRequest, context: grpc.aio.ServicerContext
) -> apb.SendEventResponse:
    namespace = checked_namespace(request.namespace)
    # An event moves runs on: on a server with an auth file, only a known caller sends one,
    # and its history names who did (law 7).
    principal = await backend.auth.acting_principal(context)
    if not NAME_PATTERN.fullmatch(request.event_name):
        raise errors.InvalidArgument.field("event_name", "must be 1-200 letters, digits, . _ -")
    if not request.correlation_key or len(request.correlation_key) > MAX_KEY:
        raise errors.InvalidArgument.field("correlation_key", f"must be 1-{MAX_KEY} characters")
    if len(request.event_id) > MAX_EVENT_ID:
        raise errors.InvalidArgument.field("event_id", f"is longer than {MAX_EVENT_ID}")
    payload = parse_json("payload", request.payload)
    sent: ops.SentEvent = await backend.committer.submit(
        ops.SendEvent(
            namespace,
            request.event_name,
            request.correlation_key,
            payload,
            request.event_id,
            principal=principal,
        )
    )
    return apb.SendEventResponse(
        delivered_to=sent.delivered_to, stored=sent.stored, event_id=sent.event_id
    )
