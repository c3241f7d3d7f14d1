"""The one place where a refusal or a failure becomes a gRPC status.

Servicers and the helpers below them raise `controlplane.errors.*`; every surefoot.v1 method's
handler is wrapped here when it is registered (`ErrorMapped`), so no servicer needs its own
try/except ladder:

- a request that does not parse as its message, or carries a NUL byte in a string field,
  is INVALID_ARGUMENT before the servicer sees it (law 8: nothing is written); on the
  worker stream that holds for the Hello, while later messages (results whose error text a
  worker's code produced) are made storable by the servicer instead of refused;
- a `Refusal` is its class's status (`InvalidArgument` with a google.rpc.BadRequest);
- a database error that the caller caused (a value the database rejects) is INVALID_ARGUMENT,
  a lost database is UNAVAILABLE (logged once per outage, not once per call);
- anything else is INTERNAL, logged once with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from sqlalchemy import exc as sa_exc

from controlplane import errors
from controlplane.api.errors import invalid_argument
from controlplane.api.wrapping import WrappingServer
from controlplane.store.reachability import DATABASE, is_unreachable

log = logging.getLogger("surefoot.api")

# SQLSTATE classes of errors a value in the request causes (22: data exception, e.g. a
# string too long or a number out of range).
_CALLER_CLASSES = ("22",)
# SQLSTATE classes of a database that cannot be reached right now (08: connection exception,
# 57P: operator intervention such as a shutdown, 53: insufficient resources).
_UNAVAILABLE_CLASSES = ("08", "57P", "53")


@dataclass(frozen=True)
class Unparsable:
    """What the deserializer hands on for bytes that are not the method's request message."""

    error: str


class ErrorMapped(WrappingServer):
    """Every handler registered through it comes out with request checks and the error map
    (`wrap_handler`), once, at registration."""

    def __init__(self, server: Any) -> None:
        super().__init__(server, wrap_handler)


def wrap_handler(handler: Any, method: str) -> Any:
    """The same handler with a lenient deserializer and the error map around its behaviour."""
    changes: dict[str, Any] = {}
    if handler.request_deserializer is not None:
        changes["request_deserializer"] = _lenient(handler.request_deserializer)
    if handler.unary_unary is not None:
        changes["unary_unary"] = _unary_unary(handler.unary_unary, method)
    elif handler.unary_stream is not None:
        changes["unary_stream"] = _unary_stream(handler.unary_stream, method)
    elif handler.stream_unary is not None:
        changes["stream_unary"] = _stream_unary(handler.stream_unary, method)
    elif handler.stream_stream is not None:
        changes["stream_stream"] = _stream_stream(handler.stream_stream, method)
    return handler._replace(**changes)


def _lenient(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    # grpc logs a traceback per request and answers UNKNOWN when a deserializer raises;
    # the error travels to `check_request` instead, which refuses it precisely.
    def parse(data: bytes) -> Any:
        try:
            message = deserialize(data)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            return Unparsable(f"{type(exc).__name__}: {exc}")
        # A NUL in a string is a zero byte on the wire: without one, nothing to look for
        # (most requests), so the walk of every field is paid only when it may find one.
        if b"\x00" in data and isinstance(message, Message):
            found = nul_field(message)
            if found is not None:
                return NulIn(message, found)
        return message

    return parse


@dataclass(frozen=True)
class NulIn:
    """A parsed request with a NUL byte in the string field at `field`."""

    message: Any
    field: str


def check_request(request: Any, method: str) -> None:
    """Raises InvalidArgument for a body that did not parse or a NUL byte in a string."""
    if isinstance(request, Unparsable):
        # One line per refused body: a client sending garbage must not flood the log.
        log.warning("%s: request body is not a valid message (%s)", method, request.error)
        raise errors.InvalidArgument.field(
            "request", f"is not a valid request message ({request.error})"
        )
    if isinstance(request, NulIn):
        raise errors.InvalidArgument.field(request.field, "contains a NUL byte")


def nul_field(message: Message, prefix: str = "") -> str | None:
    """The path of the first string field (at any depth) holding a NUL byte, or None."""
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        if field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                for index, text in enumerate(value):
                    if "\x00" in text:
                        return f"{path}[{index}]"
            elif "\x00" in value:
                return path
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            if field.message_type.GetOptions().map_entry:
                found = _nul_in_map(field, value, path)
            elif field.is_repeated:
                found = next(
                    (
                        hit
                        for index, item in enumerate(value)
                        if (hit := nul_field(item, f"{path}[{index}].")) is not None
                    ),
                    None,
                )
            else:
                found = nul_field(value, f"{path}.")
            if found is not None:
                return found
    return None


def _nul_in_map(field: FieldDescriptor, value: Any, path: str) -> str | None:
    entry_type = field.message_type
    assert entry_type is not None
    key_is_text = entry_type.fields_by_name["key"].type == FieldDescriptor.TYPE_STRING
    entry = entry_type.fields_by_name["value"]
    for key, item in value.items():
        if key_is_text and "\x00" in key:
            return f"{path}[{key!r}]"
        if entry.type == FieldDescriptor.TYPE_STRING and "\x00" in item:
            return f"{path}[{key!r}]"
        if entry.type == FieldDescriptor.TYPE_MESSAGE:
            found = nul_field(item, f"{path}[{key!r}].")
            if found is not None:
                return found
    return None


async def refuse(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """Ends the call with the status `exc` stands for."""
    if isinstance(exc, errors.InvalidArgument) and exc.violations:
        await invalid_argument(context, str(exc), exc.violations)
    if isinstance(exc, errors.Refusal):
        await context.abort(exc.code, str(exc))
    if isinstance(exc, sa_exc.SQLAlchemyError):
        code, message = database_status(exc)
        if code == grpc.StatusCode.INTERNAL:
            log.error("%s failed in the database", method, exc_info=exc)
        elif is_unreachable(exc):
            DATABASE.lost(exc)
        elif code == grpc.StatusCode.UNAVAILABLE:
            log.warning("%s: database unavailable: %s", method, _first_line(exc))
        await context.abort(code, message)
    log.error("%s failed", method, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")
    raise AssertionError("unreachable")  # context.abort raises


def database_status(exc: sa_exc.SQLAlchemyError) -> tuple[grpc.StatusCode, str]:
    """The status for a database error: the caller's value, a lost database, or ours."""
    state = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if isinstance(exc, sa_exc.DataError) or state.startswith(_CALLER_CLASSES):
        return grpc.StatusCode.INVALID_ARGUMENT, (
            f"a value in the request is not accepted by the database: {_first_line(exc)}"
        )
    lost = isinstance(
        exc,
        # OperationalError: the database's own trouble (unreachable, gone, shutting down, out
        # of resources), never the statement's.
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | sa_exc.DisconnectionError,
    )
    if isinstance(exc, sa_exc.DBAPIError):
        lost = lost or exc.connection_invalidated or state.startswith(_UNAVAILABLE_CLASSES)
    if lost:
        return grpc.StatusCode.UNAVAILABLE, "the database is unavailable; try again"
    return grpc.StatusCode.INTERNAL, f"internal database error: {type(exc).__name__}"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _passes_through(exc: Exception) -> bool:
    # An abort already chose its status.
    return isinstance(exc, grpc.aio.AbortError)


def _unary_unary(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            check_request(request, method)
            return await behaviour(request, context)
        except Exception as exc:
            if _passes_through(exc):
                raise
            await refuse(context, exc, method)

    return call


def _unary_stream(
    behaviour: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            check_request(request, method)
            async for response in behaviour(request, context):
                yield response
        except Exception as exc:
            if _passes_through(exc):
                raise
            await refuse(context, exc, method)

    return call


def _stream_unary(
    behaviour: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], Awaitable[Any]],
    method: str,
) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behaviour(_checked(requests, method), context)
        except Exception as exc:
            if _passes_through(exc):
                raise
            await refuse(context, exc, method)

    return call


def _stream_stream(
    behaviour: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]],
    method: str,
) -> Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(_checked(requests, method), context):
                yield response
        except Exception as exc:
            if _passes_through(exc):
                raise
            await refuse(context, exc, method)

    return call


async def _checked(requests: AsyncIterator[Any], method: str) -> AsyncIterator[Any]:
    """The stream's messages: the first (a worker's Hello) checked like a unary request, the
    others only for parsing. A result is not refused for a NUL in a worker's error text:
    the worker would resend it on every new stream and the step would never move; the
    servicer makes such text storable instead."""
    first = True
    async for request in requests:
        if first or isinstance(request, Unparsable):
            check_request(request, method)
        first = False
        yield request.message if isinstance(request, NulIn) else request
