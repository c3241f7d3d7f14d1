"""The worker's light handler span (surefoot_worker/_handler_span.py) is exported as the
SDK's own span would be: same parent, ids, kind, attributes, status, events and scope; the
spans the handler's code makes are its children; the sampler and the task's sampled flag
are obeyed; and its bytes are the SDK encoder's request."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, DEFAULT_ON, ParentBased, Sampler
from opentelemetry.trace import SpanKind, Status, StatusCode
from surefoot.v1 import worker_service_pb2 as pb
from surefoot_worker import _otlp_bytes, _tracing
from surefoot_worker._context import StepContext
from surefoot_worker._handler_span import HandlerTracer, parent_of

TRACE_HEX = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_HEX = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_HEX}-{PARENT_HEX}-01"


def step(traceparent: str) -> StepContext:
    return StepContext(
        task_id="task-1",
        run_id="run-1",
        node_id="charge",
        step_type="charge",
        step_version="2",
        attempt=3,
        idempotency_key="run-1:charge",
        workflow_name="orders",
        namespace="default",
        deadline=None,
        traceparent=traceparent,
    )


class Pipeline:
    """A provider whose spans land in memory, with the light tracer beside its own."""

    def __init__(self, sampler: Sampler | None = None) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "surefoot-worker"}), sampler=sampler
        )
        processor = SimpleSpanProcessor(self.memory)
        self.provider.add_span_processor(processor)
        self.light = HandlerTracer(self.provider, processor)
        self.app = self.provider.get_tracer("app")

    def spans(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.memory.get_finished_spans()}


def handler_work(tracer: Any, app: Any, traceparent: str = SAMPLED) -> None:
    """What a handler does with its span and the spans of its own code."""
    with _tracing.attempt_span(tracer, step(traceparent)) as span:
        with app.start_as_current_span("user work", kind=SpanKind.CLIENT):
            trace.get_current_span().set_attribute("n", -7)
        current = trace.get_current_span()
        assert current is span
        current.set_attribute("customer", "c-42")
        current.set_attributes({"amount": 12.5, "tags": ["a", "b"]})
        current.add_event("retrying", {"attempt": 1}, timestamp=123)
        result = pb.WorkerMessage()
        result.fail.task_id = "task-1"
        result.fail.error_type = "CardDeclined"
        result.fail.message = "card 4242"
        _tracing.record_outcome(span, result)


def test_the_light_span_is_the_sdk_span_the_handler_had_before() -> None:
    light, sdk = Pipeline(), Pipeline()
    handler_work(light.light, light.app)
    handler_work(sdk.provider.get_tracer("surefoot.worker"), sdk.app)
    mine, theirs = light.spans()["surefoot.step charge"], sdk.spans()["surefoot.step charge"]
    assert mine.parent is not None and theirs.parent is not None
    assert (mine.parent.trace_id, mine.parent.span_id, mine.parent.is_remote) == (
        theirs.parent.trace_id,
        theirs.parent.span_id,
        True,
    )
    assert mine.context.trace_id == int(TRACE_HEX, 16)
    assert mine.context.trace_flags == theirs.context.trace_flags
    assert mine.kind == theirs.kind == SpanKind.CONSUMER
    assert dict(mine.attributes or {}) == dict(theirs.attributes or {})
    assert mine.attributes is not None and mine.attributes["tags"] == ("a", "b")
    assert (mine.status.status_code, mine.status.description) == (
        StatusCode.ERROR,
        "CardDeclined: card 4242",
    )
    assert [(e.name, dict(e.attributes or {}), e.timestamp) for e in mine.events] == [
        ("retrying", {"attempt": 1}, 123)
    ]
    assert mine.instrumentation_scope is not None
    assert mine.instrumentation_scope.name == "surefoot.worker"
    assert mine.resource.attributes["service.name"] == "surefoot-worker"
    assert mine.start_time is not None and mine.end_time is not None
    assert mine.start_time <= mine.end_time
    child = light.spans()["user work"]
    assert child.parent is not None and child.parent.span_id == mine.context.span_id
    assert child.attributes == {"n": -7}


def test_an_exception_recorded_on_the_current_span_is_the_sdks_event() -> None:
    light, sdk = Pipeline(), Pipeline()
    for tracer in (light.light, sdk.provider.get_tracer("surefoot.worker")):
        with _tracing.attempt_span(tracer, step(SAMPLED)):
            try:
                raise ValueError("bad card")
            except ValueError as exc:
                trace.get_current_span().record_exception(exc)
                trace.get_current_span().set_status(StatusCode.ERROR, "bad card")
                trace.get_current_span().update_name("surefoot.step charge (declined)")
    mine = light.spans()["surefoot.step charge (declined)"]
    theirs = sdk.spans()["surefoot.step charge (declined)"]
    [mine_event], [their_event] = mine.events, theirs.events
    assert mine_event.name == their_event.name == "exception"
    keys = ("exception.type", "exception.message", "exception.escaped")
    assert mine_event.attributes is not None and their_event.attributes is not None
    assert [mine_event.attributes[k] for k in keys] == [their_event.attributes[k] for k in keys]
    assert "ValueError: bad card" in str(mine_event.attributes["exception.stacktrace"])
    assert mine.status.status_code == StatusCode.ERROR


def test_an_ok_status_is_final_and_an_ended_span_takes_nothing() -> None:
    pipeline = Pipeline()
    with _tracing.attempt_span(pipeline.light, step(SAMPLED)) as span:
        span.set_status(Status(StatusCode.OK))
        span.set_status(Status(StatusCode.ERROR, "later"))
    span.set_attribute("after", 1)
    span.add_event("after")
    span.end()  # a second end exports nothing more
    [exported] = pipeline.memory.get_finished_spans()
    assert exported.status.status_code == StatusCode.OK
    assert "after" not in (exported.attributes or {})
    assert not exported.events
    assert not span.is_recording()


def test_a_task_not_sampled_exports_nothing_and_its_children_neither() -> None:
    pipeline = Pipeline()
    handler_work(pipeline.light, pipeline.app, f"00-{TRACE_HEX}-{PARENT_HEX}-00")
    assert pipeline.memory.get_finished_spans() == ()


def test_the_providers_sampler_decides_as_for_any_span() -> None:
    pipeline = Pipeline(sampler=ALWAYS_OFF)
    handler_work(pipeline.light, pipeline.app)
    assert pipeline.memory.get_finished_spans() == ()


@pytest.mark.parametrize("flags", ["01", "00"])
def test_the_default_sampler_answered_in_place_agrees_with_the_sdks(flags: str) -> None:
    """The SDK's default sampler (DEFAULT_ON) is answered without calling it; an equal
    sampler of another identity goes through should_sample: both export the same."""
    traceparent = f"00-{TRACE_HEX}-{PARENT_HEX}-{flags}"
    default, asked = Pipeline(), Pipeline(sampler=ParentBased(ALWAYS_ON))
    assert default.provider.sampler is DEFAULT_ON
    assert asked.provider.sampler is not DEFAULT_ON
    for pipeline in (default, asked):
        with _tracing.attempt_span(pipeline.light, step(traceparent)) as span:
            assert span.get_span_context().trace_flags.sampled == (flags == "01")
            assert span.is_recording() == (flags == "01")
    shown = [
        [(s.name, s.context.trace_id, s.context.trace_flags) for s in p.memory.get_finished_spans()]
        for p in (default, asked)
    ]
    assert shown[0] == shown[1]
    assert len(shown[0]) == (1 if flags == "01" else 0)


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "garbage",
        f"01-{TRACE_HEX}-{PARENT_HEX}-01",  # a version this worker does not read
        f"00-{TRACE_HEX.upper()}-{PARENT_HEX}-01",
        f"00-{'0' * 32}-{PARENT_HEX}-01",
        f"00-{TRACE_HEX}-{'0' * 16}-01",
        f"00-{TRACE_HEX}-{PARENT_HEX}-1",
    ],
)
def test_a_missing_or_malformed_traceparent_starts_a_trace_of_its_own(traceparent: str) -> None:
    assert parent_of(traceparent) is None
    pipeline = Pipeline()
    with _tracing.attempt_span(pipeline.light, step(traceparent)):
        pass
    [exported] = pipeline.memory.get_finished_spans()
    assert exported.parent is None
    assert exported.context.trace_id != int(TRACE_HEX, 16)
    assert exported.context.trace_flags.sampled


def test_its_bytes_are_the_sdk_encoders_request() -> None:
    pipeline = Pipeline()
    with _tracing.attempt_span(pipeline.light, step(SAMPLED)) as span:
        span.set_attribute("surefoot.outcome", "completed")
    spans = list(pipeline.memory.get_finished_spans())
    data = _otlp_bytes.encode_request(spans)
    assert data is not None
    assert ExportTraceServiceRequest.FromString(data) == encode_spans(spans)
