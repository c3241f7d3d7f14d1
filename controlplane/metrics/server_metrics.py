"""A control plane's metrics: one MeterProvider of its own, its readers and instruments."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from sqlalchemy import Engine

from controlplane.metrics.commit_instruments import CommitInstruments
from controlplane.metrics.database_gauges import DatabaseGauges
from controlplane.metrics.exporters import (
    ExporterError,
    PrometheusEndpoint,
    cumulative_otlp,
    otlp_exporter,
    otlp_protocol,
    otlp_reader,
)

log = logging.getLogger("surefoot.metrics")

SERVICE_NAME = "surefoot-control-plane"
# How long a stopping control plane waits for its last export.
SHUTDOWN_SECONDS = 3.0


@dataclass(frozen=True)
class MetricsConfig:
    # HOST:PORT of the Prometheus scrape endpoint (port 0: any free port); None for none.
    listen: str | None = None
    # Seconds between two reads of the database's figures (queue depth, runs, waits...).
    gauge_interval: float = 15.0


class ServerMetrics:
    """Started with the control plane when a scrape endpoint or an OTLP endpoint is set.

    `start` returns the scrape endpoint's bound port (None without one). The provider is not
    made the global one: two control planes in one process keep their figures apart.
    """

    def __init__(self, engine: Engine, config: MetricsConfig) -> None:
        self._engine = engine
        self._config = config
        self.protocol = otlp_protocol()
        # A scrape endpoint and OTLP share one reader when OTLP takes cumulative figures.
        shared = (
            otlp_exporter(self.protocol)
            if self.protocol is not None and config.listen and cumulative_otlp()
            else None
        )
        self.endpoint = PrometheusEndpoint(config.listen, shared) if config.listen else None
        readers: list[MetricReader] = []
        if self.endpoint is not None:
            readers.append(self.endpoint.reader)
        if self.protocol is not None and shared is None:
            readers.append(otlp_reader(self.protocol))
        self._provider = MeterProvider(
            metric_readers=readers,
            # OTEL_SERVICE_NAME, when set, names the service (as it does for traces).
            resource=Resource.create(
                {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
            ),
            shutdown_on_exit=False,
        )
        meter = self._provider.get_meter("surefoot.controlplane")
        self.committer = CommitInstruments(meter)
        self._gauges = DatabaseGauges(engine, meter, config.gauge_interval)

    @staticmethod
    def wanted(config: MetricsConfig) -> bool:
        """Whether there is anywhere to send metrics to (a bad OTLP setting counts: starting
        says what is wrong with it)."""
        try:
            return bool(config.listen) or otlp_protocol() is not None
        except ExporterError:
            return True

    def start(self) -> int | None:
        port = self.endpoint.start() if self.endpoint is not None else None
        self.committer.start()
        self._gauges.start()
        if self.protocol is not None:
            log.info("metrics: exporting over OTLP (%s)", self.protocol)
        return port

    def stop(self) -> None:
        self.committer.stop()
        self._gauges.stop()
        if self.endpoint is not None:
            self.endpoint.stop()
        # Bounded: a collector that does not answer must not hold the stop.
        flusher = threading.Thread(
            target=self._provider.shutdown, name="surefoot-metrics-flush", daemon=True
        )
        flusher.start()
        flusher.join(SHUTDOWN_SECONDS)
