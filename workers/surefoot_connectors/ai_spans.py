"""One OpenTelemetry span per model call, under the attempt's span, when the worker traces.

The SDK runs a handler inside the attempt's span when tracing is on; each model call (a
first reply, a repair turn, a fallback model) becomes a child span named as OpenTelemetry's
GenAI conventions name a chat call, with the model, the tokens and the outcome. Never the
prompt or the reply: a trace backend is not where run data or an echoed secret belongs.
Without OpenTelemetry, or without a configured provider, nothing is recorded and nothing is
paid but a call to a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACER_NAME = "surefoot.connectors"


class CallSpan:
    """What a call adds to its span once it is over (no-op without a span)."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def traceparent(self, default: str) -> str:
        """The W3C traceparent naming this span, for the request (so that the endpoint's own
        spans nest under the call); `default` (the attempt's) without a span."""
        if self._span is None:
            return default
        context = self._span.get_span_context()
        flags = int(context.trace_flags)
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"

    def outcome(
        self, status: str, tokens_in: int = 0, tokens_out: int = 0, error_type: str = ""
    ) -> None:
        if self._span is None:
            return
        self._span.set_attribute("surefoot.ai.status", status)
        self._span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        self._span.set_attribute("gen_ai.usage.output_tokens", tokens_out)
        if error_type:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, error_type))


def tracer() -> Any:
    """The tracer for model call spans, or None without OpenTelemetry."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def call_span(node: str, connection: str, model: str, repair: int) -> Iterator[CallSpan]:
    """A client span around one chat completion."""
    found = tracer()
    if found is None:
        yield CallSpan(None)
        return
    from opentelemetry.trace import SpanKind

    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "surefoot.ai.node": node,
        "surefoot.ai.connection": connection,
        "surefoot.ai.repair": repair,
    }
    with found.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield CallSpan(span if span.is_recording() else None)
