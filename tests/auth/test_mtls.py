"""Mutual TLS: a verified client certificate is a credential, known by its subject CN.

The server verifies client certificates against its CA (`--tls-client-ca`); the CN then names
an entry of the auth file's `certificates:` or a certificate credential made through the
API. A certificate nobody registered is UNAUTHENTICATED, a revoked one too; a bearer token
sent over the same connection speaks for its holder instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.cli.main import main
from tests.auth.auth_support import (
    ROOT,
    TEAM_A,
    TEAM_B,
    SecuredControlPlane,
    bearer,
    refused,
    row_counts,
    write_auth_file,
)
from tests.support.processes import ProcessRegistry
from tests.support.tls import KeyPair, TlsFiles, make_tls_files

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tls_files(module_dir: Path) -> TlsFiles:
    return make_tls_files(module_dir / "tls")


@pytest.fixture(scope="module")
def mutual(
    secured_database: str, module_processes: ProcessRegistry, module_dir: Path, tls_files: TlsFiles
) -> Iterator[SecuredControlPlane]:
    server = SecuredControlPlane(
        module_processes,
        secured_database,
        write_auth_file(module_dir / "auth.yaml"),
        tls_options=[
            "--tls-cert",
            str(tls_files.server.cert),
            "--tls-key",
            str(tls_files.server.key),
            "--tls-client-ca",
            str(tls_files.ca.cert),
        ],
    )
    server.start()
    yield server
    assert server.stop() in (0, None)


def _stub(
    server: SecuredControlPlane, tls_files: TlsFiles, client: KeyPair
) -> workflow_service_pb2_grpc.WorkflowServiceStub:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls_files.ca.pair.cert_bytes(),
        private_key=client.key_bytes(),
        certificate_chain=client.cert_bytes(),
    )
    channel = grpc.secure_channel(server.address, credentials)
    return workflow_service_pb2_grpc.WorkflowServiceStub(channel)


def test_a_certificate_of_the_auth_file_acts_with_its_roles(
    mutual: SecuredControlPlane, tls_files: TlsFiles
) -> None:
    stub = _stub(mutual, tls_files, tls_files.client("reporting-a"))
    stub.ListRuns(ws.ListRunsRequest(namespace=TEAM_A), timeout=30)
    before = row_counts(mutual.database_url)
    start = ws.StartRunRequest(namespace=TEAM_A, workflow_name="held")
    assert refused(stub.StartRun, start).code().name == "PERMISSION_DENIED"
    other = ws.ListRunsRequest(namespace=TEAM_B)
    assert refused(stub.ListRuns, other).code().name == "NOT_FOUND"
    assert row_counts(mutual.database_url) == before


def test_an_unregistered_certificate_is_unauthenticated_and_a_token_speaks_for_itself(
    mutual: SecuredControlPlane, tls_files: TlsFiles
) -> None:
    stub = _stub(mutual, tls_files, tls_files.client("stranger"))
    listing = ws.ListRunsRequest(namespace=TEAM_A)
    assert refused(stub.ListRuns, listing).code().name == "UNAUTHENTICATED"
    # The TLS layer accepted the certificate; a token over that connection is who calls.
    stub.ListRuns(listing, timeout=30, metadata=bearer(ROOT))


def test_a_certificate_credential_made_through_the_api_works_until_revoked(
    mutual: SecuredControlPlane, tls_files: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = tls_files.client("admin-console")
    connection = [
        "--address",
        mutual.address,
        "--tls-ca",
        str(tls_files.ca.cert),
        "--tls-cert",
        str(admin.cert),
        "--tls-key",
        str(admin.key),
        "--token",
        ROOT,
    ]
    code = main(
        [
            "credentials",
            "create",
            "batch-job",
            "--role",
            f"{TEAM_A}=viewer",
            "--certificate-subject",
            "batch-job",
            *connection,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "token:" not in out  # a certificate credential has no secret to show
    credential_id = out.split()[1]

    stub = _stub(mutual, tls_files, tls_files.client("batch-job"))
    listing = ws.ListRunsRequest(namespace=TEAM_A)
    stub.ListRuns(listing, timeout=30)
    # A second active credential for the same subject would make its identity ambiguous.
    code = main(
        [
            "credentials",
            "create",
            "someone-else",
            "--role",
            f"{TEAM_A}=admin",
            "--certificate-subject",
            "batch-job",
            *connection,
        ]
    )
    assert code == 1 and "ALREADY_EXISTS" in capsys.readouterr().err

    assert main(["credentials", "revoke", credential_id, *connection]) == 0
    capsys.readouterr()
    assert refused(stub.ListRuns, listing).code().name == "UNAUTHENTICATED"
