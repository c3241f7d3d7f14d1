"""The workers view needs the viewer role in the namespace it reads: a credential with no
role there is NOT_FOUND, one with another role only (worker) PERMISSION_DENIED, no credential
UNAUTHENTICATED, malformed requests INVALID_ARGUMENT naming the field; every refusal leaves
every table as it was, and a viewer sees its namespace's workers and no other's."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from surefoot.v1 import credential_service_pb2 as cpb
from surefoot.v1 import (
    credential_service_pb2_grpc,
    worker_admin_service_pb2_grpc,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import (
    A_VIEWER,
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    held_definition,
    refused,
    row_counts,
)
from tests.support.eventually import assert_eventually
from tests.support.raw_worker import RawWorkerStream, declaration

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def streams(secured: SecuredControlPlane) -> Iterator[list[RawWorkerStream]]:
    """Three worker streams in TEAM_A (credit 2 each) and one in TEAM_B."""
    # A worker's namespace must be known (ROOT's "*" names none): a definition in each.
    workflows = workflow_service_pb2_grpc.WorkflowServiceStub(secured.channel)
    for namespace in (TEAM_A, TEAM_B):
        request = ws.RegisterDefinitionRequest(namespace=namespace, definition=held_definition())
        workflows.RegisterDefinition(request, timeout=30, metadata=bearer(ROOT))
    opened = [
        RawWorkerStream(
            secured.channel,
            f"view-a-{i}",
            [declaration("view-step")],
            2,
            token=ROOT,
            namespace=TEAM_A,
        )
        for i in range(3)
    ]
    opened.append(
        RawWorkerStream(
            secured.channel,
            "view-b-0",
            [declaration("view-step")],
            1,
            token=ROOT,
            namespace=TEAM_B,
        )
    )
    for stream in opened:
        stream.next_of("welcome")
    yield opened
    for stream in opened:
        stream.close()


def admin(secured: SecuredControlPlane) -> worker_admin_service_pb2_grpc.WorkerAdminServiceStub:
    return worker_admin_service_pb2_grpc.WorkerAdminServiceStub(secured.channel)


def worker_only_token(secured: SecuredControlPlane) -> str:
    credentials = credential_service_pb2_grpc.CredentialServiceStub(secured.channel)
    request = cpb.CreateCredentialRequest(
        principal="view-worker", namespaces={TEAM_A: cpb.NamespaceRoles(roles=["worker"])}
    )
    return str(credentials.CreateCredential(request, timeout=30, metadata=bearer(ROOT)).token)


def pages(secured: SecuredControlPlane, namespace: str, size: int) -> list[list[str]]:
    found: list[list[str]] = []
    token = ""
    while True:
        response = admin(secured).ListWorkers(
            wpb.ListWorkersRequest(namespace=namespace, page_size=size, page_token=token),
            timeout=30,
            metadata=bearer(A_VIEWER),
        )
        found.append([w.worker_id for w in response.workers])
        token = response.next_page_token
        if not token:
            return found


def test_a_viewer_lists_its_namespaces_workers_page_by_page(
    secured: SecuredControlPlane, streams: list[RawWorkerStream]
) -> None:
    expected = ["view-a-0", "view-a-1", "view-a-2"]
    assert_eventually(
        lambda: pages(secured, TEAM_A, 2) == [expected[:2], expected[2:]],
        message="two pages of TEAM_A's workers, by worker id, none of TEAM_B's",
    )
    response = admin(secured).ListWorkers(
        wpb.ListWorkersRequest(namespace=TEAM_A), timeout=30, metadata=bearer(A_VIEWER)
    )
    for worker in response.workers:
        assert worker.namespace == TEAM_A and worker.principal == "root"
        assert [(s.name, s.version) for s in worker.step_types] == [("view-step", "1")]
    assert_eventually(
        lambda: all(
            w.credit == 2
            for w in admin(secured)
            .ListWorkers(
                wpb.ListWorkersRequest(namespace=TEAM_A), timeout=30, metadata=bearer(ROOT)
            )
            .workers
        )
    )


def test_the_workers_view_refuses_callers_without_the_viewer_role_and_bad_requests(
    secured: SecuredControlPlane, streams: list[RawWorkerStream]
) -> None:
    stub = admin(secured)
    worker_token = worker_only_token(secured)
    before = row_counts(secured.database_url)
    cases = [
        # No role in TEAM_B: the namespace's existence does not leak.
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_B),
            A_VIEWER,
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            stub.ListQueuedStepTypes,
            wpb.ListQueuedStepTypesRequest(namespace=TEAM_B),
            A_VIEWER,
            grpc.StatusCode.NOT_FOUND,
        ),
        # Worker only: it may connect, not look at the others.
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_A),
            worker_token,
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            stub.ListQueuedStepTypes,
            wpb.ListQueuedStepTypesRequest(namespace=TEAM_A),
            worker_token,
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_A),
            None,
            grpc.StatusCode.UNAUTHENTICATED,
        ),
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_A, page_size=-1),
            A_VIEWER,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_A, page_size=1001),
            A_VIEWER,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace=TEAM_A, page_token="not-ours"),
            A_VIEWER,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stub.ListWorkers,
            wpb.ListWorkersRequest(namespace="Bad Namespace!"),
            ROOT,
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]
    for call, request, token, code in cases:
        error = refused(call, request, bearer(token) if token else ())
        assert error.code() == code, (request, token, error.details())  # type: ignore[attr-defined]
        details = error.details() or ""  # type: ignore[attr-defined]
        assert "view-b-0" not in details and "view-a" not in details
        if code == grpc.StatusCode.INVALID_ARGUMENT and "page" in str(request):
            field = "page_token" if request.page_token else "page_size"  # type: ignore[attr-defined]
            assert field in details, details
    assert row_counts(secured.database_url) == before
