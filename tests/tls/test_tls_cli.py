"""The CLI over TLS: it lists runs when it trusts the server's CA, and a client that speaks
plaintext or trusts another CA is refused before any request reaches the service."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.channels import Connection
from controlplane.cli.main import main
from tests.support.runs import json_payload, register, start_run
from tests.support.tls import TlsFiles
from tests.support.workflows import three_steps
from tests.tls.tls_support import TlsControlPlane, row_counts, stub_of

Capture = pytest.CaptureFixture[str]


def cli(capsys: Capture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_lists_runs_over_tls(control_plane: TlsControlPlane, capsys: Capture) -> None:
    register(control_plane.stub, three_steps("over-tls"))
    run_id = start_run(control_plane.stub, "over-tls", {"trail": []})
    ca = str(control_plane.files.ca.cert)

    code, out, err = cli(capsys, "runs", "list", "--address", control_plane.address, "--tls-ca", ca)
    assert (code, err) == (0, "1 of 1 runs\n")
    assert run_id in out

    # The address is an IP the certificate also names; --tls-server-name checks another name.
    code, out, err = cli(
        capsys, "runs", "show", run_id, "--address", control_plane.address,
        "--tls-ca", ca, "--tls-server-name", "localhost",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert run_id in out


def test_the_cli_reads_its_tls_options_from_the_environment(
    control_plane: TlsControlPlane, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", control_plane.address)
    monkeypatch.setenv("SUREFOOT_TLS_CA", str(control_plane.files.ca.cert))
    assert cli(capsys, "runs", "list") == (0, "no runs\n", "")


def test_a_plaintext_client_is_refused_and_writes_nothing(
    control_plane: TlsControlPlane, database_url: str, capsys: Capture
) -> None:
    register(control_plane.stub, three_steps("guarded"))
    before = row_counts(database_url)
    assert before["runs"] == 0

    with grpc.insecure_channel(control_plane.address) as channel:
        request = ws.StartRunRequest(workflow_name="guarded", input=json_payload({"trail": []}))
        with pytest.raises(grpc.RpcError) as refused:
            stub_of(channel).StartRun(request, timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]

    code, out, err = cli(capsys, "runs", "start", "guarded", "--address", control_plane.address)
    assert (code, out) == (3, "")
    assert err == (
        f"error: the control plane at {control_plane.address} closed the connection "
        "(does it serve TLS? give --tls-ca or SUREFOOT_TLS_CA)\n"
    )
    assert row_counts(database_url) == before


def test_a_client_that_trusts_another_ca_is_refused_and_writes_nothing(
    control_plane: TlsControlPlane, database_url: str, capsys: Capture
) -> None:
    register(control_plane.stub, three_steps("guarded"))
    before = row_counts(database_url)
    other = str(control_plane.files.other_ca.cert)

    code, out, err = cli(
        capsys, "runs", "start", "guarded", "--address", control_plane.address, "--tls-ca", other
    )
    assert (code, out) == (3, "")
    assert err.startswith(f"error: TLS handshake with the control plane at {control_plane.address}")
    assert "CERTIFICATE_VERIFY_FAILED" in err and err.count("\n") == 1, err
    # A name the certificate does not carry fails the same way.
    code, _, err = cli(
        capsys, "runs", "list", "--address", control_plane.address,
        "--tls-ca", str(control_plane.files.ca.cert), "--tls-server-name", "elsewhere.example",
    )  # fmt: skip
    assert code == 3 and "TLS handshake" in err, err
    assert row_counts(database_url) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--tls-ca", "/nonexistent/ca.pem"], "error: --tls-ca: cannot read /nonexistent/ca.pem"),
        (["--tls-ca", "{key}"], "holds no usable CA certificate"),
        (["--tls-ca", "{ca}", "--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (["--tls-cert", "{cert}", "--tls-key", "{key}"], "--tls-cert needs --tls-ca"),
        (["--tls-ca", "{ca}", "--tls-cert", "{cert}", "--tls-key", "{ca_key}"], "does not match"),
    ],
)
def test_bad_client_tls_options_are_one_line_and_exit_2(
    tls_files: TlsFiles, capsys: Capture, options: list[str], message: str
) -> None:
    pair = tls_files.client("someone")
    paths = {
        "ca": tls_files.ca.cert,
        "cert": pair.cert,
        "key": pair.key,
        "ca_key": tls_files.ca.pair.key,
    }
    args = [option.format(**paths) for option in options]
    # Nothing listens there: exit 2 proves the options were refused before any dial.
    code, out, err = cli(capsys, "runs", "list", "--address", "127.0.0.1:9", *args)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1, err


def test_bad_server_tls_files_stop_the_server_with_one_line(
    tls_files: TlsFiles, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def serve(config: object) -> int:
        raise AssertionError(f"the server started with {config}")

    # In-process: the options are refused before anything is served (or the test fails).
    monkeypatch.setattr("controlplane.server.run_server", serve)
    server, client = tls_files.server, tls_files.client("not-the-server")
    pair = ["--tls-cert", str(server.cert), "--tls-key", str(server.key)]
    cases = [
        (["--tls-cert", str(tmp_path / "none.pem"), "--tls-key", str(server.key)], "cannot read"),
        (["--tls-cert", str(server.cert), "--tls-key", str(client.key)], "does not match"),
        (["--tls-cert", str(server.cert)], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", str(tls_files.ca.cert)], "needs --tls-cert"),
        ([*pair, "--tls-client-ca", str(server.key)], "holds no usable CA certificate"),
    ]
    url = f"sqlite+pysqlite:///{tmp_path / 'unused.db'}"
    for options, message in cases:
        code, out, err = cli(capsys, "server", "--database-url", url, *options)
        assert (code, out) == (2, ""), (options, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "unused.db").exists()


def test_a_connection_without_a_ca_is_plaintext() -> None:
    connection = Connection(address="127.0.0.1:1", token="t")
    assert not connection.tls and connection.credentials() is None
    assert connection.metadata == (("authorization", "Bearer t"),)
