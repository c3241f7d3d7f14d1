"""WatchRun needs the viewer role in the run's namespace, like reading its history: a
credential with another role there only is PERMISSION_DENIED, one without any role there
NOT_FOUND, and neither learns anything of the run."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import credential_service_pb2_grpc, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_VIEWER,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    start_held_run,
)

pytestmark = pytest.mark.postgres


def worker_only_token(secured: SecuredControlPlane) -> str:
    """A new credential whose only role in TEAM_A is worker (which implies no viewer)."""
    credentials = credential_service_pb2_grpc.CredentialServiceStub(secured.channel)
    request = cpb.CreateCredentialRequest(
        principal="watch-worker", namespaces={TEAM_A: cpb.NamespaceRoles(roles=["worker"])}
    )
    return str(credentials.CreateCredential(request, timeout=30, metadata=bearer(ROOT)).token)


def first_message_or_error(
    secured: SecuredControlPlane, namespace: str, run_id: str, token: str
) -> ws.WatchRunResponse | grpc.RpcError:
    request = ws.WatchRunRequest(namespace=namespace, run_id=run_id)
    stream = secured.stub.WatchRun(request, timeout=30, metadata=bearer(token))
    try:
        return next(iter(stream))
    except grpc.RpcError as exc:
        return exc
    finally:
        stream.cancel()


def test_watching_a_run_needs_the_viewer_role_in_its_namespace(
    secured: SecuredControlPlane,
) -> None:
    run_id = start_held_run(secured.stub, TEAM_A, name="watch-held")

    allowed = first_message_or_error(secured, TEAM_A, run_id, A_VIEWER)
    assert isinstance(allowed, ws.WatchRunResponse), allowed
    assert allowed.status == run_pb2.RUN_STATUS_WAITING and allowed.events

    denied = first_message_or_error(secured, TEAM_A, run_id, worker_only_token(secured))
    assert isinstance(denied, grpc.RpcError)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED, denied.details()  # type: ignore[attr-defined]
    assert run_id not in (denied.details() or "")  # type: ignore[attr-defined]

    # The viewer of team-a has no role in team-b: the run "is not there".
    hidden = first_message_or_error(secured, TEAM_B, run_id, A_VIEWER)
    assert isinstance(hidden, grpc.RpcError)
    assert hidden.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]

    anonymous = ws.WatchRunRequest(namespace=TEAM_A, run_id=run_id)
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(secured.stub.WatchRun(anonymous, timeout=30)))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
