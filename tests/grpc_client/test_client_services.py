"""Beside the Surefoot services, the control plane serves gRPC health checking and reflection,
so that load balancers, Kubernetes probes and grpcurl work without the .proto files."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

pytestmark = pytest.mark.postgres

SUREFOOT_SERVICES = ("surefoot.v1.WorkflowService", "surefoot.v1.WorkerService")


@pytest.mark.parametrize("service", ["", *SUREFOOT_SERVICES])
def test_health_check_says_serving(grpc_channel: grpc.Channel, service: str) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)

    response = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_of_an_unknown_service_is_not_found(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    with pytest.raises(grpc.RpcError) as caught:
        health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def reflect(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (response,) = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
    return response


def test_reflection_lists_the_services(grpc_channel: grpc.Channel) -> None:
    response = reflect(grpc_channel, reflection_pb2.ServerReflectionRequest(list_services=""))

    names = {s.name for s in response.list_services_response.service}
    assert names >= {
        *SUREFOOT_SERVICES,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_reflection_describes_the_workflow_service(grpc_channel: grpc.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="surefoot.v1.WorkflowService"
    )

    response = reflect(grpc_channel, request)

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    services = {s.name: s for f in files if f.package == "surefoot.v1" for s in f.service}
    methods = {m.name for m in services["WorkflowService"].method}
    assert methods >= {
        "RegisterDefinition",
        "GetDefinition",
        "ListDefinitions",
        "StartRun",
        "GetRun",
        "ListRuns",
        "GetRunHistory",
        "CancelRun",
    }
