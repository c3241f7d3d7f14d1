"""Mutual TLS: with --tls-client-ca the server lets in only clients that present a certificate
its client CA signed; one without a certificate or with another CA's is refused during the
handshake, so its request never reaches the service and writes nothing."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.main import main
from tests.support.runs import json_payload, register
from tests.support.workflows import three_steps
from tests.tls.tls_support import TlsControlPlane, row_counts, stub_of

Capture = pytest.CaptureFixture[str]


def start_request() -> ws.StartRunRequest:
    return ws.StartRunRequest(workflow_name="mutual", input=json_payload({"trail": []}))


def refused_code(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as refused:
        stub_of(channel).StartRun(start_request(), timeout=5)
    return refused.value.code()  # type: ignore[attr-defined, no-any-return]


def test_only_a_client_certificate_of_the_client_ca_gets_in(
    mtls_control_plane: TlsControlPlane, database_url: str, capsys: Capture
) -> None:
    server = mtls_control_plane
    register(server.stub, three_steps("mutual"))  # the fixture's own, trusted certificate
    before = row_counts(database_url)

    with server.connection().channel() as channel:  # TLS, but no client certificate
        assert refused_code(channel) == grpc.StatusCode.UNAVAILABLE
    foreign = server.files.foreign_client("intruder")
    with server.connection(foreign).channel() as channel:
        assert refused_code(channel) == grpc.StatusCode.UNAVAILABLE
    # The CLI says so in one line.
    ca = str(server.files.ca.cert)
    tls = ["--address", server.address, "--tls-ca", ca]
    assert main(["runs", "start", "mutual", *tls]) == 3
    out, err = capsys.readouterr()
    assert err == (
        f"error: the control plane at {server.address} closed the connection during the TLS "
        "handshake (does it require a client certificate? give --tls-cert and --tls-key)\n"
    )
    code = main(["runs", "start", "mutual", *tls, "--tls-cert", str(foreign.cert),
                 "--tls-key", str(foreign.key)])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, out) == (3, "") and err.count("\n") == 1, err
    assert row_counts(database_url) == before

    trusted = server.files.client("operator")
    with server.connection(trusted).channel() as channel:
        run_id = stub_of(channel).StartRun(start_request(), timeout=10).run_id
    code = main(["runs", "list", *tls, "--tls-cert", str(trusted.cert),
                 "--tls-key", str(trusted.key)])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, "1 of 1 runs\n")
    assert run_id in out
    assert row_counts(database_url)["runs"] == before["runs"] + 1
