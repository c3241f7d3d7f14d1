"""A real OTLP/gRPC trace collector for the tests: a gRPC server implementing
opentelemetry.proto.collector.trace.v1.TraceService/Export."""

from __future__ import annotations

from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.telemetry.collector import SpanStore


class GrpcCollector(SpanStore):
    """OTLP/gRPC on 127.0.0.1 on a free port until `close()`; `spans()` is what arrived."""

    protocol = "grpc"

    def __init__(self) -> None:
        super().__init__()
        store = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(  # noqa: N802 - the service's method name
                self,
                request: trace_service_pb2.ExportTraceServiceRequest,
                context: grpc.ServicerContext,
            ) -> trace_service_pb2.ExportTraceServiceResponse:
                store._add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self._server)
        self._port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        # An http:// endpoint tells the gRPC exporter to connect without TLS.
        return f"http://127.0.0.1:{self._port}"

    def close(self) -> None:
        self._server.stop(grace=None)
