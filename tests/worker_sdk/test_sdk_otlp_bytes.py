"""The worker's spans written as OTLP bytes (surefoot_worker/_otlp_bytes.py) are the request
the SDK's encoder makes of the same spans, field for field; a span that is not plain goes
through the SDK's encoder."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import trace_exporter as http_module
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from surefoot_worker import _otlp_bytes

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def finished(make: Any) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "surefoot-worker"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    make(provider.get_tracer("surefoot.worker", "1.2"), provider.get_tracer("app"))
    return list(memory.get_finished_spans())


def plain_spans(worker: Any, app: Any) -> None:
    remote = TraceContextTextMapPropagator().extract({"traceparent": PARENT})
    attributes = {"surefoot.run_id": "run-ü", "surefoot.attempt": 2, "ok": True, "ratio": 0.25}
    with worker.start_as_current_span(
        "surefoot.step charge", context=remote, kind=SpanKind.CONSUMER, attributes=attributes
    ) as handler:
        with app.start_as_current_span("user work", kind=SpanKind.CLIENT) as inner:
            inner.set_attribute("n", -7)
        handler.set_status(Status(StatusCode.ERROR, "CardDeclined: card 4242"))
    with app.start_as_current_span("unparented"):
        pass


def test_plain_spans_are_the_sdks_request() -> None:
    spans = finished(plain_spans)
    assert len(spans) == 3
    data = _otlp_bytes.encode_request(spans)
    assert data is not None
    assert ExportTraceServiceRequest.FromString(data) == encode_spans(spans)


def test_a_span_that_is_not_plain_goes_through_the_sdks_encoder() -> None:
    def with_event(worker: Any, app: Any) -> None:
        with app.start_as_current_span("evented") as span:
            span.add_event("retrying", {"attempt": 1})

    def with_sequence(worker: Any, app: Any) -> None:
        with app.start_as_current_span("listed", attributes={"ids": ["a", "b"]}):
            pass

    for make in (with_event, with_sequence):
        spans = finished(make)
        assert _otlp_bytes.encode_request(spans) is None

    # Installed in an exporter module, either way the request is the SDK's.
    original = http_module.encode_spans
    try:
        _otlp_bytes.install(http_module)
        for make in (plain_spans, with_event):
            spans = finished(make)
            sent = http_module.encode_spans(spans).SerializePartialToString()
            assert ExportTraceServiceRequest.FromString(sent) == encode_spans(spans)
    finally:
        http_module.encode_spans = original


def test_lengths_and_numbers_at_every_varint_width_are_the_sdks_request() -> None:
    """The one-byte fast path ends at 127: lengths and values around it and far past it."""

    def sized(worker: Any, app: Any) -> None:
        values: dict[str, Any] = {f"s{n}": "x" * n for n in (0, 1, 127, 128, 300, 20_000)}
        values |= {f"i{n}": n for n in (0, 1, 127, 128, 2**14, 2**63 - 1)}
        values |= {"neg": -1, "min": -(2**63), "k" * 200: "long key"}
        with app.start_as_current_span("n" * 130, attributes=values) as span:
            span.set_status(Status(StatusCode.ERROR, "e" * 129))

    spans = finished(sized)
    data = _otlp_bytes.encode_request(spans)
    assert data is not None
    assert ExportTraceServiceRequest.FromString(data) == encode_spans(spans)


def test_kept_fields_are_the_sdks_request_as_values_repeat_and_the_cache_fills(
    monkeypatch: Any,
) -> None:
    """Text attributes' fields are kept between spans (emptied when full): repeated values,
    the same text under two keys, and a value after the cache was emptied all encode as the
    SDK's encoder does."""
    monkeypatch.setattr(_otlp_bytes, "_MAX_FIELDS", 5)
    _otlp_bytes._FIELDS.clear()

    def many(worker: Any, app: Any) -> None:
        for n in range(12):
            values = {"workflow": "orders", "node": "orders", "run": f"run-{n}", "n": n}
            with app.start_as_current_span("step", attributes=values):
                pass

    spans = finished(many)
    for chunk in (spans[:1], spans[:6], spans):
        data = _otlp_bytes.encode_request(chunk)
        assert data is not None
        assert ExportTraceServiceRequest.FromString(data) == encode_spans(chunk)
    assert len(_otlp_bytes._FIELDS) <= 5
