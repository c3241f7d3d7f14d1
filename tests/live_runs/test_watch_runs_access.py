"""WatchRuns needs the viewer role in the namespace it names, and shows nothing of another:
a viewer of team-a never hears of team-b's runs; a credential with another role there only
is PERMISSION_DENIED, one without any role there NOT_FOUND, a caller without credentials
UNAUTHENTICATED, and none of them writes anything."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import credential_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_VIEWER,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    row_counts,
    start_held_run,
    write_auth_file,
)
from tests.live_runs.live_support import WAITING, watch_runs
from tests.support.databases import fresh_database
from tests.support.processes import ProcessRegistry, process_environment

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredControlPlane]:
    """`surefoot server --auth-file` on a fresh PostgreSQL database, once for the module."""
    directory = Path(tmp_path_factory.mktemp("live-runs-auth"))
    registry = ProcessRegistry(directory / "processes", process_environment())
    try:
        with fresh_database("postgres", directory) as url:
            server = SecuredControlPlane(registry, url, write_auth_file(directory / "auth.yaml"))
            server.start()
            yield server
            assert server.stop() in (0, None)
    finally:
        registry.kill_all()


def worker_only_token(secured: SecuredControlPlane) -> str:
    credentials = credential_service_pb2_grpc.CredentialServiceStub(secured.channel)
    request = cpb.CreateCredentialRequest(
        principal="runs-table-worker", namespaces={TEAM_A: cpb.NamespaceRoles(roles=["worker"])}
    )
    return str(credentials.CreateCredential(request, timeout=30, metadata=bearer(ROOT)).token)


def test_a_viewer_of_one_namespace_hears_nothing_of_another(
    secured: SecuredControlPlane,
) -> None:
    own = start_held_run(secured.stub, TEAM_A, name="table-held")
    start_held_run(secured.stub, TEAM_B, name="table-held")
    stream = watch_runs(secured.stub, TEAM_A, bearer(A_VIEWER))
    first = stream.first()
    assert {c.run.id for c in first.changes} == {own}
    assert {c.run.namespace for c in first.changes} == {TEAM_A} and first.total == 1

    # team-b's run commits first: had it been passed on, it would be here before team-a's.
    elsewhere = start_held_run(secured.stub, TEAM_B, name="table-held")
    later = start_held_run(secured.stub, TEAM_A, name="table-held")
    stream.wait_for(later, WAITING)
    stream.cancel()

    assert elsewhere not in {c.run.id for c in stream.changes()}
    assert {c.run.namespace for c in stream.changes()} == {TEAM_A}
    assert stream.total() == 2


@pytest.mark.parametrize(
    ("who", "namespace", "code"),
    [
        ("worker", TEAM_A, grpc.StatusCode.PERMISSION_DENIED),
        ("viewer", TEAM_B, grpc.StatusCode.NOT_FOUND),
        ("nobody", TEAM_A, grpc.StatusCode.UNAUTHENTICATED),
    ],
)
def test_watching_runs_needs_the_viewer_role_there_and_refusals_write_nothing(
    secured: SecuredControlPlane, who: str, namespace: str, code: grpc.StatusCode
) -> None:
    start_held_run(secured.stub, TEAM_A, name="table-held")
    token = {"worker": worker_only_token(secured), "viewer": A_VIEWER, "nobody": ""}[who]
    before = row_counts(secured.database_url)
    request = ws.WatchRunsRequest(namespace=namespace)
    metadata = bearer(token) if token else ()
    with pytest.raises(grpc.RpcError) as refused:
        next(iter(secured.stub.WatchRuns(request, timeout=30, metadata=metadata)))

    assert refused.value.code() == code  # type: ignore[attr-defined]
    assert row_counts(secured.database_url) == before
