"""What deploy/make-secrets.sh makes runs a control plane the way compose and Kubernetes do:
TLS with its certificate, the auth file's hashed tokens; the admin token reads and writes, the
worker token runs steps over TLS and nothing else, and no token at all is UNAUTHENTICATED."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.main import main
from tests.support.processes import (
    REPO_ROOT,
    STEPS_MODULE,
    WORKER_CONNECTED,
    ManagedProcess,
    ProcessRegistry,
    surefoot_command,
)
from tests.support.runs import json_payload, wait_for_status
from tests.support.tls import Authority, KeyPair, TlsFiles
from tests.support.workflows import three_steps
from tests.tls.tls_support import TlsControlPlane, row_counts

Capture = pytest.CaptureFixture[str]
SCRIPT = REPO_ROOT / "deploy" / "make-secrets.sh"


def make_secrets(directory: Path) -> TlsFiles:
    subprocess.run(["sh", str(SCRIPT), str(directory)], check=True, capture_output=True)
    ca = Authority("deploy CA", directory, KeyPair(directory / "ca.crt", directory / "ca.key"))
    server = KeyPair(directory / "server.crt", directory / "server.key")
    return TlsFiles(ca=ca, server=server, other_ca=ca)


def test_the_secrets_of_make_secrets_run_a_server_with_tls_and_credentials(
    database_url: str, processes: ProcessRegistry, tmp_path: Path, capsys: Capture
) -> None:
    secrets = tmp_path / "secrets"
    files = make_secrets(secrets)
    admin = (secrets / "admin.token").read_text()
    worker_token = (secrets / "worker.token").read_text()
    assert (secrets / "worker.env").read_text() == f"SUREFOOT_TOKEN={worker_token}\n"
    assert admin not in (secrets / "auth.yaml").read_text()
    # Run again: nothing handed out changes.
    make_secrets(secrets)
    assert (secrets / "admin.token").read_text() == admin

    server = TlsControlPlane(
        processes, database_url, files, extra_args=("--auth-file", str(secrets / "auth.yaml"))
    )
    server.credentials_required = True
    server.start()
    tls = ["--address", server.address, "--tls-ca", str(secrets / "ca.crt")]

    before = row_counts(database_url)
    assert main(["runs", "start", "deploy-check", *tls]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert main(["runs", "list", *tls, "--token", worker_token]) == 1
    assert "PERMISSION_DENIED" in capsys.readouterr().err  # a worker may not read runs
    assert row_counts(database_url) == before

    metadata = (("authorization", f"Bearer {admin}"),)
    server.stub.RegisterDefinition(
        ws.RegisterDefinitionRequest(definition=three_steps("deploy-check")),
        metadata=metadata,
        timeout=10,
    )
    run_id = server.stub.StartRun(
        ws.StartRunRequest(workflow_name="deploy-check", input=json_payload({"trail": []})),
        metadata=metadata,
        timeout=10,
    ).run_id
    # The worker as compose starts it: its token from worker.env, the CA from the environment.
    environment = processes.env | {
        "SUREFOOT_TOKEN": worker_token,
        "SUREFOOT_TLS_CA": str(secrets / "ca.crt"),
    }
    command = surefoot_command("worker", str(STEPS_MODULE), "--address", server.address)
    worker = ManagedProcess("03-worker", command, processes.log_dir, environment)
    processes.processes.append(worker)  # killed at teardown with the others
    worker.wait_for_stdout(WORKER_CONNECTED)
    admin_stub: Any = _AdminStub(server, metadata)
    wait_for_status(admin_stub, run_id, "COMPLETED")

    assert main(["runs", "show", run_id, *tls, "--token", admin]) == 0
    assert "COMPLETED" in capsys.readouterr().out


class _AdminStub:
    """The server's stub, every call made with the admin's token."""

    def __init__(self, server: TlsControlPlane, metadata: tuple[tuple[str, str], ...]) -> None:
        self._stub = server.stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Any:
        rpc = getattr(self._stub, name)
        return lambda request, **options: rpc(request, metadata=self._metadata, **options)
