"""surefoot.v1.ConnectorOutcomeService: the outcome records of connector calls, for workers.

A connector worker claims a step's idempotency key before a call that must not be made
twice and records its outcome after it (see ``store/connector_outcomes.py``). The caller is
authenticated like every other one, and a key is only reachable from the namespace of the
run it belongs to: another namespace's run is NOT_FOUND, and nothing is written.
"""

from __future__ import annotations

import asyncio
import re
from typing import TypeVar

import grpc
import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Engine
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import errors
from controlplane.api.namespaces import namespace_of
from controlplane.api.payloads import JSON_ENCODING, parse_json
from controlplane.api.principal import Authenticator
from controlplane.store import connector_outcomes as records

# The columns' widths: a longer value could never be a key or a connector of ours.
MAX_KEY_LENGTH = 300
_CONNECTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_STATES = {
    records.STARTED: wpb.CALL_RECORD_STATE_STARTED,
    records.COMPLETED: wpb.CALL_RECORD_STATE_COMPLETED,
}

Answer = TypeVar("Answer")


class ConnectorOutcomeService(worker_service_pb2_grpc.ConnectorOutcomeServiceServicer):
    def __init__(self, engine: Engine, auth: Authenticator) -> None:
        self._engine = engine
        self._auth = auth

    async def BeginCall(
        self, request: wpb.BeginCallRequest, context: grpc.aio.ServicerContext
    ) -> wpb.BeginCallResponse:
        namespace = await self._checked(context, request.namespace, request.idempotency_key)
        _check_attempt(request.attempt)
        if not _CONNECTOR.fullmatch(request.connector):
            raise errors.InvalidArgument.field(
                "connector", "must name the connector's step type, e.g. surefoot.smtp"
            )
        try:
            found = await asyncio.to_thread(
                records.claim,
                self._engine,
                request.idempotency_key,
                request.connector,
                request.attempt,
                namespace,
            )
        except records.ClaimContention:
            raise _Aborted(
                f"the outcome record of {request.idempotency_key} keeps changing"
            ) from None
        if found is None:
            return wpb.BeginCallResponse(state=wpb.CALL_RECORD_STATE_CLAIMED)
        started = Timestamp()
        started.FromDatetime(found.started_at)
        response = wpb.BeginCallResponse(
            state=_STATES[found.state], attempt=found.attempt, started_at=started
        )
        if found.state == records.COMPLETED:
            response.outcome.CopyFrom(
                common_pb2.Payload(encoding=JSON_ENCODING, data=orjson.dumps(found.outcome))
            )
        return response

    async def CompleteCall(
        self, request: wpb.CompleteCallRequest, context: grpc.aio.ServicerContext
    ) -> wpb.CompleteCallResponse:
        namespace = await self._checked(context, request.namespace, request.idempotency_key)
        _check_attempt(request.attempt)
        # Refuses what the store cannot write back as it is (parse_json's checks).
        outcome = parse_json("outcome", request.outcome)
        recorded = await asyncio.to_thread(
            records.complete,
            self._engine,
            request.idempotency_key,
            request.attempt,
            outcome,
            namespace,
        )
        return wpb.CompleteCallResponse(recorded=recorded)

    async def ClearCall(
        self, request: wpb.ClearCallRequest, context: grpc.aio.ServicerContext
    ) -> wpb.ClearCallResponse:
        namespace = await self._checked(context, request.namespace, request.idempotency_key)
        _check_attempt(request.attempt)
        cleared = await asyncio.to_thread(
            records.release, self._engine, request.idempotency_key, request.attempt, namespace
        )
        return wpb.ClearCallResponse(cleared=cleared)

    async def _checked(self, context: grpc.aio.ServicerContext, namespace: str, key: str) -> str:
        """Who calls (refused first), then the namespace and the key they name."""
        await self._auth.caller(context)
        checked = await namespace_of(context, namespace)
        run_id, colon, node = key.partition(":")
        if not key:
            raise errors.InvalidArgument.field("idempotency_key", "is required")
        if len(key) > MAX_KEY_LENGTH:
            raise errors.InvalidArgument.field(
                "idempotency_key", f"is longer than {MAX_KEY_LENGTH} characters"
            )
        if "\x00" in key or not key.isprintable():
            raise errors.InvalidArgument.field(
                "idempotency_key", "holds a control character (NUL included)"
            )
        if not (run_id and colon and node):
            raise errors.InvalidArgument.field(
                "idempotency_key", "is not a step's key (<run id>:<node id>, as the task gives it)"
            )
        return checked


class _Aborted(errors.Refusal):
    code = grpc.StatusCode.ABORTED


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise errors.InvalidArgument.field("attempt", "must be at least 1")
