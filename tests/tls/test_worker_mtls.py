"""A worker whose credential is its client certificate: against a server requiring mutual TLS
and credentials, `surefoot worker --tls-cert/--tls-key` is known by its certificate's CN (a
worker of namespace default) and runs a run to its end; so does a client known by its own."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ProcessRegistry,
    surefoot_command,
)
from tests.support.runs import register, start_run, wait_for_status
from tests.support.tls import TlsFiles
from tests.support.workflows import three_steps
from tests.tls.tls_support import TlsControlPlane


def write_auth_file(path: Path) -> Path:
    certificates = {
        # The fixture's own client certificate: it registers and starts runs.
        "test-client": {"principal": "operator", "namespaces": {"default": ["admin"]}},
        "worker-e2e": {"principal": "worker-e2e", "namespaces": {"default": ["worker"]}},
    }
    path.write_text(yaml.safe_dump({"certificates": certificates}))
    return path


def test_a_worker_known_by_its_client_certificate_runs_steps(
    database_url: str, processes: ProcessRegistry, tls_files: TlsFiles, tmp_path: Path
) -> None:
    auth_file = write_auth_file(tmp_path / "auth.yaml")
    server = TlsControlPlane(
        processes, database_url, tls_files, mutual=True, extra_args=("--auth-file", str(auth_file))
    )
    server.credentials_required = True
    server.start()
    register(server.stub, three_steps("by-certificate"))
    run_id = start_run(server.stub, "by-certificate", {"trail": []})

    pair = tls_files.client("worker-e2e")
    worker = processes.start(
        "worker",
        surefoot_command(
            "worker",
            str(STEPS_MODULE),
            "--address",
            server.address,
            "--tls-ca",
            str(tls_files.ca.cert),
            "--tls-cert",
            str(pair.cert),
            "--tls-key",
            str(pair.key),
        ),  # fmt: skip
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    wait_for_status(server.stub, run_id, "COMPLETED")

    # The same CA, a CN the auth file does not know: TLS passes, the credential does not.
    stranger = tls_files.client("stranger")
    refused = processes.start(
        "worker",
        surefoot_command(
            "worker",
            str(STEPS_MODULE),
            "--address",
            server.address,
            "--tls-ca",
            str(tls_files.ca.cert),
            "--tls-cert",
            str(stranger.cert),
            "--tls-key",
            str(stranger.key),
        ),  # fmt: skip
    )
    assert refused.popen.wait(timeout=60) == 1
    assert "no credential is registered for the client certificate 'stranger'" in (
        refused.stderr()
    ), refused.logs()
    assert "connected" not in refused.stdout()
