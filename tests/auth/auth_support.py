"""A control plane that requires credentials, the callers of the auth tests, and row counts.

`SecuredControlPlane` is `surefoot server --auth-file FILE` without `--no-auth` (optionally
with TLS): every call needs a credential. The auth file holds the hashes of the tokens below,
each with its roles; credentials made through the API or `surefoot credentials create
--database-url` come on top of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from sqlalchemy import func, select
from surefoot.v1 import definition_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from controlplane.auth.tokens import token_hash
from controlplane.store import schema
from controlplane.store.database import open_engine
from tests.support.approval_auth import AuthControlPlane
from tests.support.processes import ProcessRegistry

TEAM_A = "team-a"
TEAM_B = "team-b"

# token -> (principal, namespaces -> roles)
ROOT = "root-token"
A_ADMIN = "a-admin-token"
A_OPERATOR = "a-operator-token"
A_VIEWER = "a-viewer-token"
A_APPROVER = "a-approver-token"
TOKENS: dict[str, tuple[str, dict[str, list[str]]]] = {
    ROOT: ("root", {"*": ["admin"]}),
    A_ADMIN: ("ann", {TEAM_A: ["admin"]}),
    A_OPERATOR: ("otto", {TEAM_A: ["operator"]}),
    A_VIEWER: ("vera", {TEAM_A: ["viewer"]}),
    A_APPROVER: ("abe", {TEAM_A: ["approver"]}),
}
# Subject CN of a client certificate -> (principal, namespaces -> roles)
CERTIFICATES: dict[str, tuple[str, dict[str, list[str]]]] = {
    "reporting-a": ("reporting", {TEAM_A: ["viewer"]}),
}
HELD = "held"  # a workflow that waits for an approval nobody gives


def write_auth_file(path: Path) -> Path:
    document = {
        "tokens": {
            token_hash(token): {"principal": p, "namespaces": roles, "groups": ["staff"]}
            for token, (p, roles) in TOKENS.items()
        },
        "certificates": {
            subject: {"principal": p, "namespaces": roles}
            for subject, (p, roles) in CERTIFICATES.items()
        },
    }
    path.write_text(yaml.safe_dump(document))
    return path


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


class SecuredControlPlane(AuthControlPlane):
    """`surefoot server --auth-file FILE [TLS options]`: credentials required on every call;
    its stub and the workers a test starts present none unless the test gives them one."""

    def __init__(
        self,
        registry: ProcessRegistry,
        database_url: str,
        auth_file: Path,
        tls_options: Sequence[str] = (),
    ) -> None:
        super().__init__(
            registry,
            database_url,
            auth_file,
            stub_token=None,
            worker_token=None,
            extra_args=tls_options,
        )


def held_definition(name: str = HELD) -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {"id": "sign", "approval": {"title": "sign it", "approvers": ["group:staff"]}}
            ],
        }
    )


def start_held_run(
    stub: workflow_service_pb2_grpc.WorkflowServiceStub, namespace: str, name: str = HELD
) -> str:
    """A run of a held workflow in `namespace`, registered there first; as ROOT."""
    stub.RegisterDefinition(
        ws.RegisterDefinitionRequest(namespace=namespace, definition=held_definition(name)),
        timeout=30,
        metadata=bearer(ROOT),
    )
    started = stub.StartRun(
        ws.StartRunRequest(namespace=namespace, workflow_name=name),
        timeout=30,
        metadata=bearer(ROOT),
    )
    return str(started.run_id)


def row_counts(database_url: str) -> dict[str, int]:
    """Rows in every table of the schema: a refused call must leave each as it was."""
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return {
                name: int(connection.execute(select(func.count()).select_from(table)).scalar_one())
                for name, table in schema.metadata.tables.items()
            }
    finally:
        engine.dispose()


def refused(call: Any, request: Any, metadata: Any = ()) -> grpc.RpcError:
    """The error of a call that must fail."""
    try:
        call(request, timeout=30, metadata=metadata)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"{type(request).__name__} was served; it must be refused")
