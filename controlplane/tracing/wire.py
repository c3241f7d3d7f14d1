"""OTLP protobuf bytes of the control plane's own spans (runs, attempts, waits), written
directly.

The SDK's encoder builds a message object per span, attribute and value in Python: about
45 µs a span, a third of what tracing cost `surefoot bench`. These spans have a fixed shape
(no events, no links, scalar attributes), so their bytes are written with the worker SDK's
primitives (surefoot_worker/_otlp_bytes.py), several times faster, and the exporters parse
the request once in C. tests/telemetry/test_wire.py holds the bytes to what the SDK's
encoder makes of the same spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from surefoot_worker._otlp_bytes import attributes, field, status
from surefoot_worker._otlp_bytes import request as _request
from surefoot_worker._otlp_bytes import span as _span

__all__ = ["attributes", "field", "request", "span"]


def span(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    values: Mapping[str, Any],
    status_code: int,
    status_message: str,
) -> bytes:
    """A Span's bytes (ids as hex; the parent, when there is one, is local)."""
    return _span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent_span_id) if parent_span_id else b"",
        name=name,
        kind=kind,
        start_ns=start_ns,
        end_ns=end_ns,
        values=values,
        status_bytes=status(status_code, status_message),
    )


def request(resource: bytes, scope: bytes, spans: Iterable[bytes]) -> bytes:
    """An ExportTraceServiceRequest's bytes: one resource, one scope, these spans.

    `resource` and `scope` are a Resource's and an InstrumentationScope's own bytes."""
    return _request([(resource, [(scope, list(spans))])])
