"""grpc.reflection.v1 answers beside v1alpha: current grpcurl, Postman and the Node and Go
reflection clients ask v1 first and need no .proto files to call the control plane."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from tests.support.processes import ControlPlane

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def reflect_v1(
    channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # v1 and v1alpha messages are the same on the wire; only the service name differs.
    call = channel.stream_stream(
        V1_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    (response,) = list(call(iter([request]), timeout=10))
    return response


def test_reflection_v1_lists_both_reflection_services(control_plane: ControlPlane) -> None:
    response = reflect_v1(
        control_plane.channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )

    names = {s.name for s in response.list_services_response.service}
    assert names >= {
        "surefoot.v1.WorkflowService",
        "surefoot.v1.WorkerService",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_reflection_v1_describes_a_service_with_its_language_options(
    control_plane: ControlPlane,
) -> None:
    request = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="surefoot.v1.AuditService"
    )

    response = reflect_v1(control_plane.channel, request)

    files = {
        f.name: f
        for f in (
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in response.file_descriptor_response.file_descriptor_proto
        )
    }
    audit = files["surefoot/v1/audit_service.proto"]
    assert [s.name for s in audit.service] == ["AuditService"]
    assert audit.options.go_package.endswith(";surefootv1")
    assert audit.options.java_package == "dev.surefoot.v1"
    assert audit.options.csharp_namespace == "Surefoot.V1"
