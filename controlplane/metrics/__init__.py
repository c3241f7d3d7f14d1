"""Metrics of the control plane, through the OpenTelemetry metrics SDK.

Exported on a Prometheus scrape endpoint (`surefoot server --metrics-listen HOST:PORT`) and
over OTLP when the standard `OTEL_EXPORTER_OTLP_*` variables name an endpoint. Histograms and
counters come from the committer's transactions (`commit_instruments`); gauges from grouped
counts of the database on a schedule (`database_gauges`), never from objects per run.
"""

from controlplane.metrics.commit_instruments import CommitInstruments
from controlplane.metrics.exporters import ExporterError
from controlplane.metrics.server_metrics import MetricsConfig, ServerMetrics

__all__ = ["CommitInstruments", "ExporterError", "MetricsConfig", "ServerMetrics"]
