"""Real OTLP metrics receivers for the tests: over HTTP (POST /v1/metrics, protobuf bodies)
and over gRPC (MetricsService/Export). They keep the latest value of each series."""

from __future__ import annotations

import gzip
import threading
import zlib
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Point:
    service: str
    value: float  # a sum's or gauge's value; a histogram's count
    time_ns: int


def _text(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    return str(getattr(value, kind)) if kind else ""


class MetricStore:
    """The latest point of each (metric, labels) any export brought."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[str, Labels], Point] = {}
        self.exports = 0

    def add(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._lock:
            self.exports += 1
            for resource_metrics in request.resource_metrics:
                resource = {a.key: _text(a.value) for a in resource_metrics.resource.attributes}
                service = resource.get("service.name", "")
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        self._add_metric(service, metric)

    def _add_metric(self, service: str, metric: Any) -> None:
        kind = metric.WhichOneof("data")
        for point in getattr(metric, kind).data_points:
            labels = tuple(sorted((a.key, _text(a.value)) for a in point.attributes))
            if kind == "histogram":
                value = float(point.count)
            else:
                value = point.as_double if point.HasField("as_double") else float(point.as_int)
            key = (metric.name, labels)
            known = self._latest.get(key)
            if known is None or known.time_ns <= point.time_unix_nano:
                self._latest[key] = Point(service, value, point.time_unix_nano)

    def value(self, name: str, **labels: str) -> float:
        """The sum of the latest values of `name`'s series whose labels include `labels`."""
        with self._lock:
            return sum(
                point.value
                for (metric, found), point in self._latest.items()
                if metric == name and all((k, v) in found for k, v in labels.items())
            )

    def services(self) -> set[str]:
        with self._lock:
            return {point.service for point in self._latest.values()}

    def label_text(self) -> str:
        """Every metric name, label and label value received, for what must never be there."""
        with self._lock:
            return " ".join(f"{name} {labels}" for name, labels in self._latest)


class HttpReceiver(MetricStore):
    """POST /v1/metrics (any other OTLP path is answered 200 and dropped)."""

    def __init__(self) -> None:
        super().__init__()
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/metrics":
                    store.add(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcReceiver(MetricStore):
    """opentelemetry.proto.collector.metrics.v1.MetricsService on a plaintext port."""

    def __init__(self) -> None:
        super().__init__()
        store = self

        class Service(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(
                self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
            ) -> metrics_service_pb2.ExportMetricsServiceResponse:
                store.add(request)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        self._server.stop(0)
