"""Without a valid credential nothing is served, reads included, and nothing is written.

No token, a token nobody issued, a malformed authorization header and a revoked token are
each UNAUTHENTICATED: never taken for an anonymous caller.
"""

from __future__ import annotations

import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.main import main
from tests.auth.auth_support import (
    A_VIEWER,
    ROOT,
    TEAM_A,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
    start_held_run,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import ProcessRegistry

pytestmark = pytest.mark.postgres

NOT_CREDENTIALS = {
    "no token": (),
    "unknown token": bearer("made-up-token"),
    "not bearer": (("authorization", f"Basic {ROOT}"),),
    "empty bearer": (("authorization", "Bearer "),),
}


@pytest.mark.parametrize("credentials", NOT_CREDENTIALS.values(), ids=NOT_CREDENTIALS.keys())
def test_reads_and_writes_without_a_valid_token_are_unauthenticated_and_write_nothing(
    secured: SecuredControlPlane, credentials: tuple[tuple[str, str], ...]
) -> None:
    stub = secured.stub
    run_id = start_held_run(stub, TEAM_A)
    before = row_counts(secured.database_url)
    calls = [
        (stub.GetRun, ws.GetRunRequest(namespace=TEAM_A, run_id=run_id)),
        (stub.ListRuns, ws.ListRunsRequest(namespace=TEAM_A)),
        (stub.ListDefinitions, ws.ListDefinitionsRequest(namespace=TEAM_A)),
        (stub.StartRun, ws.StartRunRequest(namespace=TEAM_A, workflow_name="held")),
        (stub.CancelRun, ws.CancelRunRequest(namespace=TEAM_A, run_id=run_id)),
    ]
    for call, request in calls:
        error = refused(call, request, credentials)
        assert error.code().name == "UNAUTHENTICATED", (type(request).__name__, error)
    assert row_counts(secured.database_url) == before
    # The run is untouched, as its owner sees it.
    run = stub.GetRun(
        ws.GetRunRequest(namespace=TEAM_A, run_id=run_id), timeout=30, metadata=bearer(ROOT)
    )
    assert run_pb2.RunStatus.Name(run.run.status) == "RUN_STATUS_WAITING"


def test_a_body_that_does_not_parse_is_unauthenticated_before_it_is_invalid(
    secured: SecuredControlPlane,
) -> None:
    # Without a credential the server says nothing about the request itself.
    garbage = secured.channel.unary_unary(
        "/surefoot.v1.WorkflowService/StartRun",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    before = row_counts(secured.database_url)
    error = refused(garbage, b"\xff\xff\xff")
    assert error.code().name == "UNAUTHENTICATED"
    error = refused(garbage, b"\xff\xff\xff", bearer(ROOT))
    assert error.code().name == "INVALID_ARGUMENT"
    assert row_counts(secured.database_url) == before


def _credential_id(out: str) -> str:
    return out.split()[1]


def test_a_revoked_token_is_refused_at_once_here_and_within_a_second_elsewhere(
    secured: SecuredControlPlane,
    module_processes: ProcessRegistry,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A second control plane on the same database: revocation must reach it too.
    other = SecuredControlPlane(module_processes, secured.database_url, secured.auth_file)
    other.start()
    try:
        main(
            [
                "credentials",
                "create",
                "temp",
                "--role",
                f"{TEAM_A}=viewer",
                "--address",
                secured.address,
                "--token",
                ROOT,
            ]
        )
        out, _ = capsys.readouterr()
        credential_id = _credential_id(out)
        token = out.split("token: ", 1)[1].split()[0]
        listing = ws.ListRunsRequest(namespace=TEAM_A)
        for plane in (secured, other):
            plane.stub.ListRuns(listing, timeout=30, metadata=bearer(token))

        code = main(
            ["credentials", "revoke", credential_id, "--address", secured.address, "--token", ROOT]
        )
        assert code == 0, capsys.readouterr().err
        before = row_counts(secured.database_url)
        # The server that revoked it: at once, not even one more call.
        error = refused(secured.stub.ListRuns, listing, bearer(token))
        assert error.code().name == "UNAUTHENTICATED"
        start = ws.StartRunRequest(namespace=TEAM_A, workflow_name="held")
        assert refused(secured.stub.StartRun, start, bearer(token)).code().name == (
            "UNAUTHENTICATED"
        )

        # Another control plane: within its one-second cache.
        def refused_elsewhere() -> bool:
            error = refused(other.stub.ListRuns, listing, bearer(token))
            assert error.code().name == "UNAUTHENTICATED"
            return True

        assert_eventually(refused_elsewhere, timeout=3.0, message="revocation reaches the other")
        assert row_counts(secured.database_url) == before
    finally:
        other.stop()


def test_a_viewer_token_of_the_auth_file_reads(secured: SecuredControlPlane) -> None:
    # The same calls with a valid credential are served: the refusals above were about it.
    listed = secured.stub.ListRuns(
        ws.ListRunsRequest(namespace=TEAM_A), timeout=30, metadata=bearer(A_VIEWER)
    )
    assert listed is not None
