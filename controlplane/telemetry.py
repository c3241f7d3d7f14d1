"""OpenTelemetry tracing of the control plane, configured by the standard `OTEL_*` variables.

Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and `OTEL_SDK_DISABLED` is not true); otherwise nothing is imported or set up, and the
committer's only cost is one check of `enabled()`.

Every attempt is a span in its run's trace: the trace id is the one stored on the run, and the
span id is the one of the `traceparent` the task carried to the worker, so that the worker's
spans nest under it. The span is emitted once the attempt's outcome has committed; it starts
when the attempt was leased.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("surefoot.telemetry")

SERVICE_NAME = "surefoot-control-plane"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

# How long a stopping process waits for its last spans to reach the collector.
SHUTDOWN_SECONDS = 3.0

_tracer: Any = None
_provider: Any = None
# (trace id, span id) the next span created in this context must have.
_preset_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "surefoot_preset_span_ids", default=None
)


def export_configured(environ: dict[str, str] | os._Environ[str] | None = None) -> bool:
    """Whether the environment asks for trace export."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def enabled() -> bool:
    return _tracer is not None


def setup(service_name: str = SERVICE_NAME) -> bool:
    """Set up the global tracer provider with an OTLP/HTTP exporter if the environment asks
    for it. Returns whether tracing is on; idempotent."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not export_configured():
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(
        resource=Resource.create(attributes), id_generator=_id_generator(), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(shutdown)
    _provider = provider
    _tracer = provider.get_tracer("surefoot.controlplane")
    log.info("tracing: exporting spans over OTLP/HTTP")
    return True


def shutdown() -> None:
    """Flush what is buffered, for at most SHUTDOWN_SECONDS: a stopping control plane should
    not lose its last spans, nor wait on a collector that does not answer."""
    global _tracer, _provider
    provider, _tracer, _provider = _provider, None, None
    if provider is not None:
        bounded_shutdown(provider, SHUTDOWN_SECONDS)


def bounded_shutdown(provider: Any, seconds: float) -> None:
    def stop() -> None:
        try:
            provider.shutdown()
        except Exception:  # an exporter failing to flush
            log.warning("tracing: flushing spans failed", exc_info=True)

    flusher = threading.Thread(target=stop, name="surefoot-trace-flush", daemon=True)
    flusher.start()
    flusher.join(seconds)
    if flusher.is_alive():
        log.warning("tracing: spans not flushed within %.0f s; dropping them", seconds)


def grpc_server_interceptors() -> list[Any]:
    """The gRPC server interceptor that traces every call, when tracing is on."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider)]


def _id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class PresetIdGenerator(RandomIdGenerator):
        """Random ids, except for the span being created under `_preset_ids`."""

        def generate_span_id(self) -> int:
            preset = _preset_ids.get()
            return preset[1] if preset is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            preset = _preset_ids.get()
            return preset[0] if preset is not None else super().generate_trace_id()

    return PresetIdGenerator()


@dataclass(frozen=True)
class AttemptSpan:
    """An attempt whose outcome was recorded, as its span will show it."""

    traceparent: str
    run_id: str
    workflow: str
    node_id: str
    step_type: str
    attempt: int
    idempotency_key: str
    outcome: str  # completed, failed or lost
    started: float | None  # epoch seconds, when the attempt was leased
    ended: float
    worker_id: str = ""
    error_type: str = ""
    error_message: str = ""


def emit_attempts(spans: Sequence[AttemptSpan]) -> None:
    """Emit the attempts' spans; never raises (tracing must not fail a commit's delivery)."""
    tracer = _tracer
    if tracer is None:
        return
    for attempt in spans:
        try:
            _emit(tracer, attempt)
        except Exception:
            log.warning("tracing: attempt span of %s not emitted", attempt.node_id, exc_info=True)


def _emit(tracer: Any, attempt: AttemptSpan) -> None:
    from opentelemetry.context import Context
    from opentelemetry.trace import SpanKind, Status, StatusCode

    _, trace_hex, span_hex, _ = attempt.traceparent.split("-")
    ended = int(attempt.ended * 1e9)
    started = int(attempt.started * 1e9) if attempt.started else ended
    attributes: dict[str, Any] = {
        "surefoot.run_id": attempt.run_id,
        "surefoot.workflow": attempt.workflow,
        "surefoot.node_id": attempt.node_id,
        "surefoot.step_type": attempt.step_type,
        "surefoot.attempt": attempt.attempt,
        "surefoot.idempotency_key": attempt.idempotency_key,
        "surefoot.outcome": attempt.outcome,
    }
    if attempt.worker_id:
        attributes["surefoot.worker_id"] = attempt.worker_id
    if attempt.error_type:
        attributes["error.type"] = attempt.error_type
        attributes["surefoot.error.message"] = attempt.error_message
    token = _preset_ids.set((int(trace_hex, 16), int(span_hex, 16)))
    try:
        span = tracer.start_span(
            f"step {attempt.node_id}",
            context=Context(),  # no parent: the attempts are the top of the run's trace
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=min(started, ended),
        )
    finally:
        _preset_ids.reset(token)
    if attempt.outcome != "completed":
        description = f"{attempt.error_type}: {attempt.error_message}".strip(": ")
        span.set_status(Status(StatusCode.ERROR, description or attempt.outcome))
    span.end(end_time=ended)
