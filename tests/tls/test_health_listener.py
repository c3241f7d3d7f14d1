"""`--health-listen`: a TLS server also answers grpc.health.v1, and nothing else, in plaintext
on a second port, which is what Kubernetes' `grpc:` probes and compose health checks ask."""

from __future__ import annotations

import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.processes import ProcessRegistry
from tests.support.tls import TlsFiles
from tests.tls.tls_support import TlsControlPlane, stub_of

HEALTH_LINE = re.compile(r"health checks \(plaintext\) on (\S+)")


def test_health_answers_in_plaintext_on_its_own_port_and_nothing_else_does(
    database_url: str, processes: ProcessRegistry, tls_files: TlsFiles
) -> None:
    server = TlsControlPlane(
        processes, database_url, tls_files, extra_args=("--health-listen", "127.0.0.1:0")
    )
    server.start()
    assert server.process is not None
    health_address = server.process.wait_for_stdout(HEALTH_LINE).group(1)
    assert health_address != server.address

    with grpc.insecure_channel(health_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "surefoot.v1.WorkflowService", "surefoot.v1.WorkerService"):
            response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING, service
        # The API is not reachable through the health port.
        with pytest.raises(grpc.RpcError) as refused:
            stub_of(channel).ListRuns(ws.ListRunsRequest(namespace="default"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]
    # The same status over the TLS port, for clients that can speak it.
    response = health_pb2_grpc.HealthStub(server.channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert server.stop() == 0
