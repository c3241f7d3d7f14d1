"""The connection to the control plane and the translation of gRPC failures into exit codes."""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane import telemetry
from controlplane.cli import output
from controlplane.cli.arguments import positive_seconds
from controlplane.cli.channels import (
    Connection,
    add_connection_arguments,
    bearer_token,  # noqa: F401  (connectors.py takes it from here)
    connection_from_args,
    transport_failure,
)
from controlplane.cli.errors import EXIT_REFUSED, EXIT_UNREACHABLE, CliError

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"
CALL_TIMEOUT_SECONDS = 10.0
# After a call fails with UNAVAILABLE, how long to wait for the channel
# to connect before concluding that nothing is listening (rather than a slow or busy server).
_CONNECTED_PROBE_SECONDS = 0.5

Response = TypeVar("Response")


def add_address_arguments(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """--address and --namespace, defaulting to SUREFOOT_ADDRESS and SUREFOOT_NAMESPACE; with
    `several`, --address may be repeated (a list, None when not given: see `addresses_of`)."""
    default = os.environ.get("SUREFOOT_ADDRESS", DEFAULT_ADDRESS)
    if several:
        parser.add_argument(
            "--address",
            action="append",
            metavar="HOST:PORT",
            help="control plane address; repeated or comma-separated for several control "
            "planes of one database, a DNS name may resolve to several: the worker connects "
            f"to one that answers and fails over (env SUREFOOT_ADDRESS; default {default})",
        )
    else:
        parser.add_argument(
            "--address",
            default=default,
            metavar="HOST:PORT",
            help="control plane address (env SUREFOOT_ADDRESS; default %(default)s)",
        )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("SUREFOOT_NAMESPACE", DEFAULT_NAMESPACE),
        help="namespace (env SUREFOOT_NAMESPACE; default %(default)s)",
    )


def addresses_of(args: argparse.Namespace) -> str:
    """The addresses of a repeatable --address, comma-separated (the default if not given)."""
    given = args.address or [os.environ.get("SUREFOOT_ADDRESS", DEFAULT_ADDRESS)]
    return ",".join(given)


def add_client_arguments(parser: argparse.ArgumentParser, *, writes: bool = False) -> None:
    """The options every client command takes: address, namespace, --token, TLS, --timeout
    and the output format (-o, --json); with `writes`, --request-id too."""
    if writes:
        add_request_id_argument(parser)
    add_address_arguments(parser)
    add_connection_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=_default_timeout(),
        metavar="SECONDS",
        help="deadline of each call to the control plane; no answer in time is exit 3 "
        "(env SUREFOOT_TIMEOUT; default %(default)g). Watch streams have none",
    )
    output.add_output_arguments(parser)


def add_request_id_argument(parser: argparse.ArgumentParser) -> None:
    """--request-id for a command that writes: the id its calls carry (default: a new one)."""
    parser.add_argument(
        "--request-id",
        default="",
        metavar="ID",
        help="the request id to send (default: a new one each time). A command that got no "
        "answer prints the id it sent: run it again with --request-id ID to get the first "
        "outcome without acting twice",
    )


def _default_timeout() -> float:
    # A bad SUREFOOT_TIMEOUT is reported when parsed as the default, by argparse (exit 2).
    text = os.environ.get("SUREFOOT_TIMEOUT")
    return positive_seconds(text) if text else CALL_TIMEOUT_SECONDS


class ControlPlaneClient:
    """A synchronous WorkflowService client bound to one namespace.

    Use as a context manager so that the channel is closed. Every call has the deadline of
    the connection (--timeout, 10 s by default) and carries the bearer token, if any, over
    TLS when the connection has a CA bundle; failures come out as CliError with the exit
    code the CLI promises.
    """

    def __init__(self, connection: Connection, namespace: str, request_id: str = "") -> None:
        self.connection = connection.check()
        # Given by --request-id: the first write carries it, the nth one "ID.n" (a command
        # repeated with the same arguments sends the same ids again).
        self._request_id = request_id
        self._writes = 0
        self._repeatable = False
        self.address = connection.address
        self.namespace = namespace
        self._metadata = connection.metadata
        # A client span per call when the environment asks for export (nothing otherwise).
        self._channel = telemetry.traced_channel(connection.channel(), "surefoot-cli")
        self.workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ControlPlaneClient:
        client = cls(connection_from_args(args), args.namespace, getattr(args, "request_id", ""))
        client._repeatable = hasattr(args, "request_id")
        return client

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._channel.close()

    def call(self, rpc: Callable[..., Response], request: Any) -> Response:
        """Calls `rpc(request)` with the CLI's deadline.

        Raises:
            CliError: exit 3 when no control plane answers, exit 1 when it refuses.
        """
        request_id = self._identify(request)
        try:
            return rpc(request, timeout=self.connection.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._translate(exc, request_id) from exc

    def _identify(self, request: Any) -> str:
        """A write request's id: the one it has, --request-id's, or a new one."""
        if "request_id" not in request.DESCRIPTOR.fields_by_name:
            return ""
        if not request.request_id:
            self._writes += 1
            given = self._request_id
            if not given:
                request.request_id = str(uuid.uuid4())
            else:
                request.request_id = given if self._writes == 1 else f"{given}.{self._writes}"
        return str(request.request_id)

    def _translate(self, exc: grpc.RpcError, request_id: str = "") -> CliError:
        call: Any = exc  # a failed unary call is both the RpcError and the grpc.Call
        code: grpc.StatusCode = call.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            details = " ".join((call.details() or "").split())
            maybe = "a change may still have been made"
            if request_id and self._repeatable:
                maybe = (
                    f"it may still have been made: run the command again with --request-id "
                    f"{request_id} to get its outcome without acting twice"
                )
            return CliError(
                transport_failure(self.connection, details)
                or f"no answer from the control plane at {self.address} within "
                f"{self.connection.timeout:g} s (--timeout); {maybe}",
                EXIT_UNREACHABLE,
            )
        # A server that answers UNAVAILABLE (draining, database down) has a connected channel;
        # only a channel that cannot connect means "nothing is listening there".
        if code == grpc.StatusCode.UNAVAILABLE and not self._connected():
            failure = transport_failure(self.connection, " ".join((call.details() or "").split()))
            if failure:
                return CliError(failure, EXIT_UNREACHABLE)
            return CliError(
                f"cannot reach the control plane at {self.address} "
                "(is it running? set --address or SUREFOOT_ADDRESS)",
                EXIT_UNREACHABLE,
            )
        details = (call.details() or "").replace("\n", " ").strip()
        message = f"{code.name}: {details}" if details else code.name
        return CliError(message, EXIT_REFUSED, field_violations(call))

    def _connected(self) -> bool:
        return channel_connected(self._channel)


def channel_connected(channel: grpc.Channel) -> bool:
    """Whether `channel` connects within a moment: an UNAVAILABLE from a server that answers
    (draining, database down) is a refusal, from no server at all it is unreachable."""
    try:
        grpc.channel_ready_future(channel).result(timeout=_CONNECTED_PROBE_SECONDS)
    except grpc.FutureTimeoutError:
        return False
    return True


def field_violations(call: Any) -> list[str]:
    """`  - <field>: <description>` for each google.rpc.BadRequest violation the server sent."""
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # the rich status disagrees with the call's code or message: ignore it
        return []
    if status is None:
        return []
    lines = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                description = " ".join(violation.description.split())
                lines.append(f"  - {violation.field}: {description}")
    return lines
