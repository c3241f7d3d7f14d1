"""A control plane that knows bearer tokens: who acts comes from credentials (law 7).

The server maps the `authorization: Bearer <token>` metadata to a principal, its groups and
its roles through an auth file (which holds the tokens' hashes only); every call must carry
a token. The deciding principal is never a request field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.auth.tokens import token_hash
from controlplane.cli.channels import Connection
from tests.support.processes import (
    ControlPlane,
    ProcessRegistry,
)

# token -> (principal, groups, roles in every namespace). Approvers name principals or
# "group:<name>".
OPERATOR = "operator-token"  # registers definitions, starts runs; named as no approver
ALICE = "alice-token"  # a manager
BOB = "bob-token"  # in no group
CAROL = "carol-token"  # named as an approver herself
WORKER = "worker-token"  # the worker processes of these tests (SUREFOOT_TOKEN)
TOKENS: dict[str, tuple[str, list[str], list[str]]] = {
    OPERATOR: ("ops", ["operators"], ["admin"]),
    ALICE: ("alice", ["managers"], ["operator", "approver"]),
    BOB: ("bob", [], ["operator", "approver"]),
    CAROL: ("carol", ["finance"], ["operator", "approver"]),
    WORKER: ("worker", [], ["worker"]),
}


def write_auth_file(path: Path) -> Path:
    tokens = {
        token_hash(token): {"principal": p, "groups": groups, "namespaces": {"*": roles}}
        for token, (p, groups, roles) in TOKENS.items()
    }
    path.write_text(yaml.safe_dump({"tokens": tokens}))
    return path


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata that authenticates as the holder of `token`."""
    return (("authorization", f"Bearer {token}"),)


class _DefaultBearer(grpc.UnaryUnaryClientInterceptor):
    """Authenticates a call with `token` unless it carries credentials of its own."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer(token)

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], details: Any, request: Any
    ) -> Any:
        metadata = tuple(details.metadata or ())
        if not any(key == "authorization" for key, _ in metadata):
            details = details._replace(metadata=metadata + self._metadata)
        return continuation(details, request)


class AuthControlPlane(ControlPlane):
    """`surefoot server --auth-file FILE [EXTRA_ARGS]`; killed and restarted like ControlPlane.

    `stub` acts as the holder of `stub_token` (by default OPERATOR, so that the shared helpers
    of support/runs.py can start runs; None: no credential); a call with its own
    `authorization` metadata acts as its holder, and `anonymous_stub` sends no credentials at
    all. The processes the test starts after it (its workers) present `worker_token`
    (SUREFOOT_TOKEN; by default WORKER, None: none). With `tls_ca` (the server serves TLS
    through `extra_args`), the test's channel trusts that CA.
    """

    credentials_required = True

    def __init__(
        self,
        registry: ProcessRegistry,
        database_url: str,
        auth_file: Path,
        lease_seconds: float = 2.0,
        *,
        stub_token: str | None = OPERATOR,
        worker_token: str | None = WORKER,
        extra_args: Sequence[str] = (),
        tls_ca: str | None = None,
    ) -> None:
        super().__init__(registry, database_url, lease_seconds)
        self.auth_file = auth_file
        self.extra_args = list(extra_args)
        self.tls_ca = tls_ca
        self._stub_token = stub_token
        if worker_token is not None:
            registry.env["SUREFOOT_TOKEN"] = worker_token

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None and self.tls_ca is not None:
            self._channel = Connection(self.address, tls_ca=self.tls_ca).channel()
        return super().channel

    @property
    def stub(self) -> workflow_service_pb2_grpc.WorkflowServiceStub:
        if self._stub is None:
            channel = self.channel
            if self._stub_token is not None:
                channel = grpc.intercept_channel(channel, _DefaultBearer(self._stub_token))
            self._stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
        return self._stub

    @property
    def anonymous_stub(self) -> workflow_service_pb2_grpc.WorkflowServiceStub:
        return workflow_service_pb2_grpc.WorkflowServiceStub(self.channel)

    def server_command(self, port: int) -> list[str]:
        return [*super().server_command(port), "--auth-file", str(self.auth_file), *self.extra_args]
