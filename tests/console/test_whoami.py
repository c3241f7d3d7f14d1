"""WhoAmI, which the console's header is built from: a token's principal, groups and roles; a
`--no-auth` server says so; an unknown token is UNAUTHENTICATED and learns nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1.credential_service_pb2_grpc import CredentialServiceStub

from tests.support.approval_auth import ALICE, AuthControlPlane, bearer, write_auth_file
from tests.support.processes import ControlPlane, ProcessRegistry


@pytest.fixture
def auth_control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    assert server.stop() in (0, None)


def who_am_i(channel: grpc.Channel, token: str | None = None) -> cpb.WhoAmIResponse:
    metadata = bearer(token) if token else ()
    stub = CredentialServiceStub(channel)
    answer: cpb.WhoAmIResponse = stub.WhoAmI(cpb.WhoAmIRequest(), metadata=metadata, timeout=10)
    return answer


def test_a_token_is_its_principal_with_its_groups_and_roles(
    auth_control_plane: AuthControlPlane,
) -> None:
    answer = who_am_i(auth_control_plane.channel, ALICE)
    assert answer.principal == "alice"
    assert list(answer.groups) == ["managers"]
    assert answer.source == cpb.CALLER_SOURCE_CREDENTIAL
    # Roles come expanded: an operator and approver also views.
    assert sorted(answer.namespaces["*"].roles) == ["approver", "operator", "viewer"]

    with pytest.raises(grpc.RpcError) as refused:
        who_am_i(auth_control_plane.channel, "not-a-token")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as anonymous:
        who_am_i(auth_control_plane.channel)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_server_without_credentials_says_the_caller_is_anonymous_with_every_role(
    control_plane: ControlPlane,
) -> None:
    answer = who_am_i(control_plane.channel)
    assert answer.source == cpb.CALLER_SOURCE_NO_AUTH
    assert answer.principal == "anonymous"
    assert "admin" in answer.namespaces["*"].roles
