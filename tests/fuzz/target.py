"""The server under fuzzing: a real `surefoot server` process on its own PostgreSQL database,
seeded, with a fingerprint of its database and the calls the fuzz tests make to it.

Every call answers a status code; the tests assert it is one of `REFUSALS` or OK, never
UNKNOWN or INTERNAL (a crash in a handler), DEADLINE_EXCEEDED (a hang) or UNAVAILABLE (a
dead process; the database is up throughout).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import message_factory
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from surefoot.v1 import (
    audit_service_pb2,
    credential_service_pb2,
    evaluation_service_pb2,
    worker_service_pb2,
    workflow_service_pb2,
)

from tests.fuzz.fingerprint import DatabaseFingerprint, Fingerprint, difference
from tests.fuzz.seed import Seeded, seed
from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.processes import ControlPlane, ProcessRegistry, process_environment

OK = grpc.StatusCode.OK
REFUSALS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
CALL_TIMEOUT = 30.0


def _unary_methods() -> dict[str, Any]:
    """Every unary RPC of the API by "Service.Method"; new services are fuzzed as they come."""
    methods: dict[str, Any] = {}
    modules = (
        workflow_service_pb2,
        worker_service_pb2,
        credential_service_pb2,
        audit_service_pb2,
        evaluation_service_pb2,
    )
    for module in modules:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if not (method.client_streaming or method.server_streaming):
                    methods[f"{service.name}.{method.name}"] = method
    return methods


UNARY = _unary_methods()
METHODS = sorted(UNARY)
# Reads are named so; every other RPC is treated as a write and checked call by call.
READ_PREFIXES = ("Get", "List", "Verify")
# Reads whose names say otherwise: WhoAmI answers who the caller is and writes nothing.
NAMED_READS = {"CredentialService.WhoAmI"}
READS = [
    name
    for name in METHODS
    if name.partition(".")[2].startswith(READ_PREFIXES) or name in NAMED_READS
]
WRITES = [name for name in METHODS if name not in READS]
CONNECT = "/surefoot.v1.WorkerService/Connect"


def request_class(method: str) -> type[Message]:
    return message_factory.GetMessageClass(UNARY[method].input_type)


def path_of(method: str) -> str:
    descriptor = UNARY[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


def token_hash(token: str) -> str:
    """What an auth file holds for `token` (`surefoot credentials hash`)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


# The credentials of the server with an auth file: who seeds it, and who fuzzes it.
ADMIN_TOKEN = "fuzz-admin-token"
WORKER_TOKEN = "fuzz-worker-token"
VIEWER_TOKEN = "fuzz-viewer-token"


def write_auth_file(path: Path) -> Path:
    entries = {
        ADMIN_TOKEN: {"principal": "fuzz-admin", "namespaces": {"*": ["admin"]}},
        WORKER_TOKEN: {"principal": "fuzz-worker", "namespaces": {"default": ["worker"]}},
        VIEWER_TOKEN: {"principal": "fuzz-viewer", "namespaces": {"default": ["viewer"]}},
    }
    tokens = {token_hash(token): entry for token, entry in entries.items()}
    path.write_text(yaml.safe_dump({"tokens": tokens}))
    return path


class AuthFileControlPlane(ControlPlane):
    """`surefoot server --auth-file FILE`."""

    def __init__(self, registry: ProcessRegistry, database_url: str, auth_file: Path) -> None:
        super().__init__(registry, database_url)
        self.auth_file = auth_file

    def server_command(self, port: int) -> list[str]:
        command = super().server_command(port)
        # The shared fixture may pass --no-auth for servers without credentials.
        command = [arg for arg in command if arg != "--no-auth"]
        return [*command, "--auth-file", str(self.auth_file)]


@dataclass
class Target:
    """A seeded server, the metadata the fuzzing caller sends, and its database's state."""

    control_plane: ControlPlane
    database: DatabaseFingerprint
    seeded: Seeded
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def channel(self) -> grpc.Channel:
        return self.control_plane.channel

    def call(self, method: str, request: Message | bytes) -> grpc.StatusCode:
        """Sends one request of a unary RPC (a message, or raw bytes as the body)."""
        # No serializers: bytes go out as they are, the answer is not parsed.
        callable_ = self.channel.unary_unary(
            path_of(method), request_serializer=None, response_deserializer=None
        )
        body = request if isinstance(request, bytes) else request.SerializeToString()
        return status_of(lambda: callable_(body, timeout=CALL_TIMEOUT, metadata=self.metadata))

    def stream(self, messages: Sequence[bytes]) -> tuple[grpc.StatusCode, list[bytes]]:
        """A WorkerService.Connect stream that sends `messages` (serialised) and closes its
        side; the status it ended with and the raw messages the server sent."""
        callable_ = self.channel.stream_stream(
            CONNECT,
            request_serializer=None,
            response_deserializer=None,
        )
        received: list[bytes] = []

        def run() -> None:
            call = callable_(iter(messages), timeout=CALL_TIMEOUT, metadata=self.metadata)
            received.extend(call)

        return status_of(run), received

    def fingerprint(self) -> Fingerprint:
        return self.database.take()

    def assert_alive(self) -> None:
        """The process runs and answers gRPC health."""
        process = self.control_plane.process
        assert process is not None and process.running, "the control plane process died"
        health = health_pb2_grpc.HealthStub(self.channel)
        answer = health.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, answer

    def server_log(self) -> str:
        process = self.control_plane.process
        return process.logs() if process is not None else ""


def status_of(call: object) -> grpc.StatusCode:
    assert callable(call)
    try:
        call()
    except grpc.RpcError as exc:
        code = exc.code()
        assert isinstance(code, grpc.StatusCode)
        return code
    return OK


def assert_accepted_or_refused(
    target: Target, what: str, code: grpc.StatusCode, allowed: Iterable[grpc.StatusCode] = ()
) -> None:
    expected = REFUSALS | {OK} if not allowed else frozenset(allowed)
    assert code in expected, (
        f"{what} answered {code.name}, expected one of "
        f"{sorted(c.name for c in expected)}\n{target.server_log()}"
    )


def assert_unchanged(before: Fingerprint, after: Fingerprint, what: str) -> None:
    assert before == after, f"{what} was refused but wrote: {difference(before, after)}"


@contextmanager
def fuzz_target(
    directory: Path, *, auth: bool, metadata: tuple[tuple[str, str], ...] = ()
) -> Iterator[Target]:
    """A seeded server on a fresh PostgreSQL database; `auth`: with an auth file, seeded as
    its admin (and worker), fuzzed with `metadata`."""
    require_postgres()
    with fresh_postgres_database() as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        database = DatabaseFingerprint(url)
        try:
            control_plane: ControlPlane
            if auth:
                auth_file = write_auth_file(directory / "auth.yaml")
                control_plane = AuthFileControlPlane(registry, url, auth_file)
            else:
                control_plane = ControlPlane(registry, url)
            control_plane.start()
            seeded = seed(
                control_plane.channel,
                bearer(ADMIN_TOKEN) if auth else (),
                bearer(WORKER_TOKEN) if auth else (),
            )
            target = Target(control_plane, database, seeded, metadata)
            database.settled()
            yield target
            target.assert_alive()
            assert control_plane.stop() == 0, "the control plane did not exit cleanly"
        finally:
            database.close()
            registry.kill_all()
