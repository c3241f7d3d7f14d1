"""Batching and exporting the spans of run records (runs, attempts, waits) from a thread of
their own, encoded by `tracing.wire` rather than the SDK's encoder.

The committer only appends records to a queue (a few µs a span); a thread wakes every
`delay` seconds, or sooner once `max_batch` are queued, writes their bytes and hands them to
the OTLP exporter the environment chose (gRPC or HTTP), as the SDK's batch processor would.
A full queue drops spans (counted in the log) rather than slow the committer: a trace is
worth less than a commit.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from surefoot_worker._otlp_bytes import PreEncoded

from controlplane.tracing import sampling, wire
from controlplane.tracing.emission import (
    SCOPE,
    describe,
    parent_span_id,
    span_nanos,
    trace_id_of,
)
from controlplane.tracing.spans import TraceSpan

log = logging.getLogger("surefoot.telemetry")

_INTERNAL = 1  # SPAN_KIND_INTERNAL


class RecordExport:
    """The spans of run records, batched and exported by one thread."""

    def __init__(
        self,
        exporter: Any,
        resource: Any,
        *,
        delay: float = 1.0,
        max_batch: int = 512,
        max_queue: int = 20_000,
    ) -> None:
        self._exporter = exporter
        self._resource = wire.attributes(dict(resource.attributes), 1)
        self._scope = wire.field(1, SCOPE.encode())
        self._delay = delay
        self._max_batch = max_batch
        self._max_queue = max_queue
        self._queue: deque[TraceSpan] = deque()
        self._wake = threading.Condition()
        self._stopping = False
        self._dropped = 0
        self._thread = threading.Thread(target=self._run, name="surefoot-spans", daemon=True)
        self._thread.start()

    def emit(self, spans: Sequence[TraceSpan]) -> None:
        """Queue the spans of sampled runs; never raises, never blocks on the collector."""
        kept = [s for s in spans if sampling.sampled(trace_id_of(s))]
        if not kept:
            return
        with self._wake:
            room = self._max_queue - len(self._queue)
            if room < len(kept):
                self._dropped += len(kept) - max(room, 0)
                kept = kept[: max(room, 0)]
            self._queue.extend(kept)
            if len(self._queue) >= self._max_batch:
                self._wake.notify()

    def shutdown(self, seconds: float) -> None:
        """Export what is queued, for at most `seconds`, then stop."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(seconds)
        self._exporter.shutdown()

    def _run(self) -> None:
        while True:
            with self._wake:
                if not self._stopping and len(self._queue) < self._max_batch:
                    self._wake.wait(self._delay)
                batch = PreEncoded(
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                )
                stopping, dropped, self._dropped = self._stopping, self._dropped, 0
            if dropped:
                log.warning("tracing: %d spans dropped, the export queue was full", dropped)
            if batch:
                self._export(batch)
            if stopping and not self._queue:
                return

    def _export(self, batch: PreEncoded) -> None:
        try:
            batch.payload = wire.request(self._resource, self._scope, map(_encoded, batch))
            self._exporter.export(batch)
        except Exception:  # the collector, or a record: never the thread
            log.warning("tracing: %d spans not exported", len(batch), exc_info=True)


def _encoded(span: TraceSpan) -> bytes:
    name, span_id, attributes, status = describe(span)
    trace_id = trace_id_of(span)
    started, ended = span_nanos(span)
    return wire.span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id(span, trace_id),
        name=name,
        kind=_INTERNAL,
        start_ns=started,
        end_ns=ended,
        values=attributes,
        status_code=status.status_code.value,
        status_message=status.description or "",
    )
