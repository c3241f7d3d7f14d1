"""The handler's span when the SDK set up tracing itself: a light span of the OpenTelemetry
API handed to the SDK's span processor as a `ReadableSpan` when it ends.

The SDK's own span validates each attribute under a lock, keeps them in bounded collections
and is made through a propagator, a context manager and a span processor chain: about 45 µs a
handler, the largest part of what tracing costs a worker running short steps. This one keeps
plain values in a dict and parses the task's `traceparent` itself; the export path (batching,
the exporter, `_otlp_bytes`) is the SDK's, unchanged. It is current while the handler runs, so
the spans the handler's own code makes are its children, and it takes what that code may ask of
the current span (attributes, events, a status, an exception, a new name).

An application that configured a tracer provider of its own gets spans from its tracer instead
(`_tracing.tracer`): its processors and limits apply.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import DEFAULT_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from ._context import StepContext

_SCOPE = InstrumentationScope("surefoot.worker")
_TRACEPARENT = re.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parent_of(traceparent: str) -> SpanContext | None:
    """The remote parent a W3C `traceparent` names (version 00), or None for none or a
    malformed one, as the W3C propagator answers."""
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None:
        return None
    trace_id, span_id, flags = (int(part, 16) for part in found.groups())
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def attribute_value(value: Any) -> Any:
    """A value as OpenTelemetry keeps it: scalars and sequences of them as they are (a
    sequence as a tuple), anything else as its text, as the SDK's span does."""
    if isinstance(value, (str, bool, int, float, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(attribute_value(item) for item in value)
    return str(value)


class HandlerTracer:
    """Starts handler spans for a provider this SDK made, ending them into its processor."""

    def __init__(self, provider: TracerProvider, processor: SpanProcessor) -> None:
        self._provider = provider
        self._processor = processor

    def handler_span(self, step: StepContext, attributes: dict[str, Any]) -> CurrentSpan:
        """The handler's span, current while the `with` block runs, then ended and exported."""
        name = f"surefoot.step {step.step_type}"
        parent = parent_of(step.traceparent) if step.traceparent else None
        ids = self._provider.id_generator
        trace_id = parent.trace_id if parent is not None else ids.generate_trace_id()
        sampler = self._provider.sampler
        extra: Mapping[str, Any] | None = None
        if sampler is DEFAULT_ON:
            # ParentBased(ALWAYS_ON), the SDK's default, answered here as it would answer:
            # the task's sampled flag (the control plane's decision), a root always.
            sampled = parent.trace_flags.sampled if parent is not None else True
            recording, trace_state = sampled, parent.trace_state if parent is not None else None
        else:
            parent_context = (
                trace.set_span_in_context(trace.NonRecordingSpan(parent))
                if parent is not None
                else context_api.Context()
            )
            sampling = sampler.should_sample(
                parent_context, trace_id, name, SpanKind.CONSUMER, attributes
            )
            sampled, recording = sampling.decision.is_sampled(), sampling.decision.is_recording()
            trace_state, extra = sampling.trace_state, sampling.attributes
        flags = TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT
        random_id = (
            parent.trace_flags.random_trace_id if parent is not None else ids.is_trace_id_random()
        )
        if random_id:
            flags |= TraceFlags.RANDOM_TRACE_ID
        span_context = SpanContext(
            trace_id,
            ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(flags),
            trace_state=trace_state,
        )
        span: trace.Span
        if recording:
            if extra:
                attributes.update(extra)
            span = HandlerSpan(name, span_context, parent, attributes, self)
        else:
            span = trace.NonRecordingSpan(span_context)
        # The span is the context's whole content, as the W3C propagator's extraction was.
        return CurrentSpan(span, context_api.Context())

    def finished(self, span: HandlerSpan, end_ns: int) -> None:
        self._processor.on_end(
            ReadableSpan(
                name=span.name,
                context=span.get_span_context(),
                parent=span.parent,
                resource=self._provider.resource,
                attributes=span.attributes,
                events=tuple(span.events),
                links=tuple(span.links),
                kind=SpanKind.CONSUMER,
                status=span.status,
                start_time=span.start_ns,
                end_time=end_ns,
                instrumentation_scope=_SCOPE,
            )
        )


class CurrentSpan:
    """A span made current by `with`, and ended (exported) when the block is left."""

    __slots__ = ("_context", "_span", "_token")

    def __init__(self, span: trace.Span, parent_context: context_api.Context) -> None:
        self._span = span
        self._context = trace.set_span_in_context(span, parent_context)
        self._token: object = None

    def __enter__(self) -> trace.Span:
        self._token = context_api.attach(self._context)
        return self._span

    def __exit__(self, *exc_info: object) -> None:
        self._span.end()
        context_api.detach(self._token)  # type: ignore[arg-type]


class HandlerSpan(trace.Span):
    """A recording span of the API, kept in plain Python values (one thread: the handler's
    code and the worker's loop do not touch it at the same time)."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, Any],
        tracer: HandlerTracer,
    ) -> None:
        self.name = name
        self.parent = parent
        self.attributes = attributes
        self.events: list[Event] = []
        self.links: list[trace.Link] = []
        self.status = Status(StatusCode.UNSET)
        self.start_ns = time.time_ns()
        self._context = context
        self._tracer = tracer
        self._ended = False

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        self._tracer.finished(self, end_time if end_time is not None else time.time_ns())

    def update_name(self, name: str) -> None:
        if not self._ended:
            self.name = name

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._ended:
            return
        if not key or not isinstance(key, str) or value is None:
            return
        self.attributes[key] = attribute_value(value)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if not self._ended:
            self.events.append(Event(name, attributes, timestamp))

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK's span: an OK status is final; UNSET never replaces another.
        if self._ended or self.status.status_code is StatusCode.OK:
            return
        new = status if isinstance(status, Status) else Status(status, description)
        if new.status_code is not StatusCode.UNSET:
            self.status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The event the SDK's span records (OpenTelemetry's exception conventions).
        values: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            values.update(attributes)
        self.add_event("exception", values, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not self._ended and context.is_valid:
            self.links.append(trace.Link(context, attributes))
