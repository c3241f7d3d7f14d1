"""OpenTelemetry spans around step handlers, when the application uses OpenTelemetry.

The SDK works without OpenTelemetry: every import here is guarded, and `tracer()` returns None
when `opentelemetry` is not installed, or no tracer provider is configured and the standard
`OTEL_EXPORTER_OTLP_*ENDPOINT` variables do not ask for export. With a tracer, each handler runs
inside a span whose parent is the attempt's span (the task's W3C `traceparent`), so the spans
the handler's own code creates (HTTP clients, database drivers) nest under the attempt in the
run's trace.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, cast

from surefoot.v1 import worker_service_pb2 as pb

from . import _otlp_bytes
from ._context import StepContext
from ._redaction import redact

logger = logging.getLogger("surefoot.worker")

SERVICE_NAME = "surefoot-worker"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# How long an exiting worker waits for its last spans to reach the collector.
SHUTDOWN_SECONDS = 3.0
_own_provider: Any = None
_own_tracer: Any = None  # the HandlerTracer of the provider set up here


def _protocol() -> str:
    """The OTLP protocol the environment names for traces (the control plane reads the same
    variables): "grpc", else http/protobuf, the specification's default."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            return "grpc" if value == "grpc" else "http/protobuf"
    return "http/protobuf"


def export_configured() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def tracer() -> Any:
    """The tracer for handler spans, or None when tracing is off: the application's when it
    configured a provider, else a light one (`_handler_span`) for the provider set up here."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider: Any = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        # The application configured no provider: set one up only if asked to export.
        provider = _setup_provider() if export_configured() else None
        if provider is None:
            return None
    if provider is _own_provider and _own_tracer is not None:
        return _own_tracer
    return provider.get_tracer("surefoot.worker")


def _setup_provider() -> Any:
    global _own_provider, _own_tracer
    if _own_provider is not None:
        return _own_provider
    grpc = _protocol() == "grpc"
    package = f"opentelemetry-exporter-otlp-proto-{'grpc' if grpc else 'http'}"
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        if grpc:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
    except ImportError:
        logger.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-sdk and %s are not "
            "installed: no spans are exported",
            package,
        )
        return None
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    # Plain spans (the handlers' own) are written by _otlp_bytes, not the SDK's encoder.
    _otlp_bytes.install(sys.modules[OTLPSpanExporter.__module__])
    processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    atexit.register(_flush_at_exit, provider)
    _own_provider = trace.get_tracer_provider()
    if _own_provider is provider:
        from ._handler_span import HandlerTracer

        _own_tracer = HandlerTracer(provider, processor)
    return _own_provider


def _flush_at_exit(provider: Any) -> None:
    """Flush the last spans, but do not hold the exit up on a collector that does not answer."""

    def stop() -> None:
        try:
            provider.shutdown()
        except Exception:
            logger.warning("tracing: flushing spans failed", exc_info=True)

    flusher = threading.Thread(target=stop, name="surefoot-trace-flush", daemon=True)
    flusher.start()
    flusher.join(SHUTDOWN_SECONDS)


def attempt_span(tracer: Any, context: StepContext) -> AbstractContextManager[Any]:
    """The handler's span, current for the code the handler runs."""
    attributes = {
        "surefoot.run_id": context.run_id,
        "surefoot.workflow": context.workflow_name,
        "surefoot.node_id": context.node_id,
        "surefoot.step_type": context.step_type,
        "surefoot.step_version": context.step_version,
        "surefoot.attempt": context.attempt,
        "surefoot.idempotency_key": context.idempotency_key,
        "surefoot.task_id": context.task_id,
    }
    light = getattr(tracer, "handler_span", None)  # a HandlerTracer (_handler_span)
    if light is not None:
        return cast(AbstractContextManager[Any], light(context, attributes))
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = (
        TraceContextTextMapPropagator().extract({"traceparent": context.traceparent})
        if context.traceparent
        else Context()
    )
    return cast(
        AbstractContextManager[Any],
        tracer.start_as_current_span(
            f"surefoot.step {context.step_type}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ),
    )


def record_outcome(span: Any, result: pb.WorkerMessage) -> None:
    """Mark the span with how the handler ended (a Fail is an error, its message masked as
    the control plane masks its own: an upstream's reply may quote a credential)."""
    from opentelemetry.trace import Status, StatusCode

    if result.HasField("fail"):
        fail = result.fail
        span.set_attribute("surefoot.outcome", "failed")
        span.set_attribute("error.type", fail.error_type)
        span.set_status(Status(StatusCode.ERROR, f"{fail.error_type}: {redact(fail.message)}"))
    elif result.HasField("complete"):
        span.set_attribute("surefoot.outcome", "completed")
    elif result.HasField("hand_back"):
        span.set_attribute("surefoot.outcome", "handed_back")


def in_current_context(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` run in a copy of the caller's context: a thread pool does not carry it, and
    the handler's spans need the attempt's span as their parent."""
    return functools.partial(contextvars.copy_context().run, handler)
