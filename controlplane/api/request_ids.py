"""Request ids on write RPCs: a call repeated with the id it was first sent with acts once.

A client whose call timed out cannot know whether it went through; repeating it with the
same `request_id` returns the first call's answer (and trailing metadata
`surefoot-repeated: true`) instead of acting again. The answer is kept by the transaction
that made the write (store/write_requests.py), so it exists exactly when the write does. The
same id with a different request (another method, other fields, another caller) is refused
with ALREADY_EXISTS. Refused calls keep nothing: repeating one asks again.

Writes through the committer use `submitted`; writes in a transaction of their own use
`written`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from controlplane import errors
from controlplane.api.backend import Backend
from controlplane.dispatch import operations as ops
from controlplane.store import write_requests
from controlplane.store.write_requests import RequestKey

M = TypeVar("M", bound=Message)
T = TypeVar("T")

MAX_REQUEST_ID = 200
REPEATED = ("surefoot-repeated", "true")


def key_of(namespace: str, request: Message, principal: str) -> RequestKey | None:
    """The request's key, or None when it carries no request id.

    Raises:
        errors.InvalidArgument: the id is too long.
    """
    request_id: str = request.request_id  # type: ignore[attr-defined]
    if not request_id:
        return None
    if len(request_id) > MAX_REQUEST_ID:
        raise errors.InvalidArgument.field(
            "request_id", f"is longer than {MAX_REQUEST_ID} characters"
        )
    method = request.DESCRIPTOR.name.removesuffix("Request")
    return RequestKey.of(namespace, method, request, principal)


def _repeated(context: grpc.aio.ServicerContext, response_type: type[M], data: bytes) -> M:
    context.set_trailing_metadata((REPEATED,))
    return response_type.FromString(data)


async def submitted(
    backend: Backend,
    context: grpc.aio.ServicerContext,
    key: RequestKey | None,
    operation: ops.Operation,
    respond: Callable[[Any], M],
    response_type: type[M],
) -> M:
    """Submit `operation`; answer `respond(result)`, or the first answer to `key`'s id."""
    if key is None:
        return respond(await backend.committer.submit(operation))
    once = ops.Once(operation, key, lambda result: respond(result).SerializeToString())
    result = await backend.committer.submit(once)
    if isinstance(result, ops.Repeated):
        return _repeated(context, response_type, result.response)
    return respond(result)


async def written(
    engine: Engine,
    context: grpc.aio.ServicerContext,
    key: RequestKey | None,
    work: Callable[[Connection], T],
    respond: Callable[[T], M],
    response_type: type[M],
) -> M:
    """`work` in a transaction of its own, answered `respond(result)`; once per request id."""

    def once(connection: Connection) -> tuple[M, bool]:
        if key is not None and (found := write_requests.find(connection, key)) is not None:
            return response_type.FromString(found), True
        response = respond(work(connection))
        if key is not None:
            keep(connection, key, response)
        return response, False

    response, repeated = await _in_transaction(engine, once)
    if repeated:
        context.set_trailing_metadata((REPEATED,))
    return response


def keep(connection: Connection, key: RequestKey, response: Message) -> None:
    """Keep `response` as the answer to `key`, in the transaction that made the write."""
    write_requests.record(connection, key, response.SerializeToString(), datetime.now(UTC))


async def _in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    def run() -> T:
        with engine.begin() as connection:
            return work(connection)

    try:
        return await asyncio.to_thread(run)
    except IntegrityError:
        # Another call with the same id may have committed first (its transaction, all of
        # it, won): this one's work was rolled back with the lost insert; once more, it finds
        # that answer (a conflict of the work's own raises again).
        return await asyncio.to_thread(run)
