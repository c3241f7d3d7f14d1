"""One metric reader for both destinations: the Prometheus scrape endpoint, and OTLP.

The SDK aggregates every recorded value once per registered reader (its attributes hashed and a
lock taken in each): with a scrape endpoint and an OTLP exporter as two readers, every figure the
committer records cost twice. Both want cumulative figures (OTLP's default temporality), so one
reader serves both: a scrape collects through it as the Prometheus reader always did, and a thread
of its own collects through it every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds and hands that
collection to the OTLP exporter instead of to the scrape's queue.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData

log = logging.getLogger("surefoot.metrics")

DEFAULT_INTERVAL_MS = 60_000.0
DEFAULT_TIMEOUT_MS = 30_000.0


def _milliseconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class SharedReader(PrometheusMetricReader):
    """The Prometheus reader, whose collections also feed an OTLP exporter when given one."""

    def __init__(self, registry: Any, otlp: Any = None) -> None:
        super().__init__(registry=registry, scope_info_enabled=False)
        self._otlp = otlp
        self._taken: MetricsData | None = None
        self._taking = threading.Lock()
        self._exporting = threading.local()
        self._stop = threading.Event()
        self._interval = _milliseconds("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_INTERVAL_MS)
        self._timeout = _milliseconds("OTEL_METRIC_EXPORT_TIMEOUT", DEFAULT_TIMEOUT_MS)
        self._thread: threading.Thread | None = None

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if getattr(self._exporting, "on", False):
            self._taken = metrics_data  # the OTLP thread's collection, not the scrape's
            return
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def start_exporting(self) -> None:
        if self._otlp is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="surefoot-metrics-otlp", daemon=True)
        self._thread.start()

    def stop_exporting(self) -> None:
        """Export once more (the figures since the last export), then stop."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(self._timeout / 1000 + 1)
        self._thread = None
        self._otlp.shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self._interval / 1000):
            self._export()
        self._export()

    def _export(self) -> None:
        with self._taking:
            self._exporting.on = True
            try:
                self.collect(timeout_millis=self._timeout)
                taken, self._taken = self._taken, None
            except Exception:
                log.warning("metrics: a collection for OTLP failed", exc_info=True)
                return
            finally:
                self._exporting.on = False
        if taken is None:
            return
        try:
            self._otlp.export(taken, timeout_millis=self._timeout)
        except Exception:  # the collector: never the thread
            log.warning("metrics: an OTLP export failed", exc_info=True)
