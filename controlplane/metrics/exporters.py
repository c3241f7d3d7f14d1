"""Where the metrics go: a Prometheus scrape endpoint, and OTLP when an endpoint is set.

OTLP follows the standard variables: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT` turn it on (unless `OTEL_SDK_DISABLED=true` or
`OTEL_METRICS_EXPORTER=none`), `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL` or
`OTEL_EXPORTER_OTLP_PROTOCOL` choose `grpc` or `http/protobuf` (the default), and
`OTEL_METRIC_EXPORT_INTERVAL` the export period in milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
PROTOCOLS = ("grpc", "http/protobuf")


class ExporterError(Exception):
    """A metrics setting that cannot work (an unknown protocol, a port in use)."""


def otlp_protocol(environ: Mapping[str, str] | None = None) -> str | None:
    """The OTLP protocol the environment asks metrics to be exported with; None for none."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_METRICS_EXPORTER", "").strip().lower() == "none":
        return None
    if not any(env.get(name, "").strip() for name in _ENDPOINTS):
        return None
    protocol = next(
        (value for name in _PROTOCOLS if (value := env.get(name, "").strip())), "http/protobuf"
    )
    if protocol not in PROTOCOLS:
        raise ExporterError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected one of {', '.join(PROTOCOLS)}"
        )
    return protocol


def otlp_exporter(protocol: str) -> Any:
    """An OTLP metric exporter; endpoint, headers and timeout come from the environment."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter()


def otlp_reader(protocol: str) -> MetricReader:
    """A periodic OTLP exporter; endpoint, headers and interval come from the environment."""
    return PeriodicExportingMetricReader(otlp_exporter(protocol))


def cumulative_otlp(environ: Mapping[str, str] | None = None) -> bool:
    """Whether OTLP takes cumulative figures, as a scrape endpoint does (the default)."""
    env = os.environ if environ is None else environ
    preference = env.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "")
    return preference.strip().lower() in ("", "cumulative")


class PrometheusEndpoint:
    """`/metrics` in the Prometheus text format, served by its own HTTP thread from a
    registry of this control plane's own (two control planes in one process do not mix)."""

    def __init__(self, listen: str, otlp: Any = None) -> None:
        from prometheus_client import CollectorRegistry

        from controlplane.metrics.shared_reader import SharedReader

        host, _, port = listen.rpartition(":")
        if not port.isdigit():
            raise ExporterError(f"--metrics-listen {listen!r}: expected HOST:PORT")
        self._host, self._port = host.strip("[]") or "0.0.0.0", int(port)
        self._registry = CollectorRegistry(auto_describe=True)
        # Without the otel_scope_* labels on every series: one scope, nothing to tell apart.
        # With an OTLP exporter, the same reader's collections go to it as well (see
        # shared_reader): one aggregation of each figure rather than one per destination.
        self.reader = SharedReader(self._registry, otlp)
        self._server: Any = None
        self.port = 0

    def start(self) -> int:
        """Listen; returns the bound port (a port of 0 picks a free one)."""
        from prometheus_client import start_http_server

        try:
            server, _ = start_http_server(self._port, self._host, registry=self._registry)
        except OSError as exc:
            raise ExporterError(
                f"cannot listen on {self._host}:{self._port} for metrics: {exc.strerror}"
            ) from exc
        self._server = server
        self.port = int(server.server_port)
        self.reader.start_exporting()
        return self.port

    def stop(self) -> None:
        self.reader.stop_exporting()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
