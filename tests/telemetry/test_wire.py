"""The bytes tracing.wire writes for run records are the request the SDK's encoder makes of
the same spans: the same message, field for field, once parsed."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controlplane.store.run_batch import traceparent_for
from controlplane.tracing import wire
from controlplane.tracing.emission import SCOPE, SpanSink
from controlplane.tracing.export import _encoded
from controlplane.tracing.spans import AttemptSpan, RunSpan, TraceSpan, WaitSpan, wait_span_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_790_000_000.123456

RECORDS: list[TraceSpan] = [
    RunSpan(TRACE, "run-1", "default", "orders", "COMPLETED", T0, T0 + 9.5),
    RunSpan(TRACE, "run-2", "default", "orders", "FAILED", T0, T0 + 1, "Boom", "it broke ünïcode"),
    AttemptSpan(
        traceparent_for(TRACE, "run-1:charge:1"),
        "run-1",
        "orders",
        "charge",
        "charge-card",
        1,
        "run-1:charge",
        "completed",
        T0 + 0.25,
        T0 + 0.75,
        worker_id="w-1",
    ),
    AttemptSpan(
        traceparent_for(TRACE, "run-1:charge:2"),
        "run-1",
        "orders",
        "charge",
        "charge-card",
        2,
        "run-1:charge",
        "failed",
        None,
        T0 + 2,
        error_type="CardDeclined",
        error_message="card 4242 declined, Bearer abc.def",
    ),
    WaitSpan(
        TRACE,
        wait_span_id("run-1", "ok", 0, "approval"),
        "run-1",
        "orders",
        "ok",
        "approval",
        T0 + 3,
        T0 + 300,
        outcome="approved",
        attributes={"surefoot.approval_id": "run-1:ok", "surefoot.ratio": 0.5, "flag": True},
    ),
    WaitSpan(TRACE, "00f067aa0ba902b7", "run-1", "orders", "b", "backoff", T0, T0 + 1, attempt=-3),
]


def test_the_written_request_is_the_sdks_request_for_the_same_spans() -> None:
    resource = Resource.create({"service.name": "surefoot-control-plane"})
    memory = InMemorySpanExporter()
    SpanSink(SimpleSpanProcessor(memory), resource).emit(RECORDS)
    expected = encode_spans(memory.get_finished_spans())

    written = wire.request(
        wire.attributes(dict(resource.attributes), 1),
        wire.field(1, SCOPE.encode()),
        map(_encoded, RECORDS),
    )
    assert ExportTraceServiceRequest.FromString(written) == expected
    assert len(expected.resource_spans[0].scope_spans[0].spans) == len(RECORDS)
