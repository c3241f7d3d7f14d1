"""OpenTelemetry tracing of Surefoot processes, configured by the standard `OTEL_*` variables.

Export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
(and `OTEL_SDK_DISABLED` is not true), over the protocol `OTEL_EXPORTER_OTLP_PROTOCOL` names
(grpc or http/protobuf, the default); otherwise nothing is imported or set up, and the
committer's only cost is one check of `enabled()`. `OTEL_TRACES_SAMPLER` / `_ARG` are the SDK's
own, and agree with the sampled flag of the tasks' `traceparent` (`tracing.sampling`).

A run is one trace, its id stored on the run. Its root span covers the run from start to end
and is emitted when the run ends; every attempt is a child of it, with the span id of the
`traceparent` the task carried to the worker (so the worker's spans nest under it); so is every
wait (approval, timer, event, retry backoff), emitted when the wait ends. All of them are
emitted once the transaction that recorded them has committed (`emit`).
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from controlplane.logs import redact
from controlplane.tracing import sampling
from controlplane.tracing.spans import (
    AttemptSpan,
    RunSpan,
    TraceSpan,
    WaitSpan,
    root_span_id,
)

if TYPE_CHECKING:
    import grpc

__all__ = ["AttemptSpan", "RunSpan", "TraceSpan", "WaitSpan"]

log = logging.getLogger("surefoot.telemetry")

SERVICE_NAME = "surefoot-control-plane"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
GRPC = "grpc"
HTTP = "http/protobuf"

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


def protocol(environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """The OTLP protocol the environment names for traces: grpc or http/protobuf."""
    env = os.environ if environ is None else environ
    for name in _PROTOCOL_VARIABLES:
        value = env.get(name, "").strip().lower()
        if not value:
            continue
        if value in (GRPC, HTTP):
            return value
        log.warning("%s=%s is not supported (grpc, http/protobuf): using %s", name, value, HTTP)
        return HTTP
    return HTTP


def enabled() -> bool:
    return _tracer is not None


def tracer_provider() -> Any:
    """The provider spans are exported through (None when tracing is off)."""
    return _provider


def setup(service_name: str = SERVICE_NAME) -> bool:
    """Set up the global tracer provider with an OTLP exporter if the environment asks for
    it. Returns whether tracing is on; idempotent."""
    global _tracer, _provider
    if _tracer is not None:
        return True
    if not export_configured():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(
        resource=Resource.create(attributes), id_generator=_id_generator(), shutdown_on_exit=False
    )
    chosen = protocol()
    provider.add_span_processor(BatchSpanProcessor(_exporter(chosen)))
    trace.set_tracer_provider(provider)
    atexit.register(shutdown)
    _provider = provider
    _tracer = provider.get_tracer("surefoot.controlplane")
    log.info("tracing: exporting spans over OTLP (%s)", chosen)
    return True


def _exporter(chosen: str) -> Any:
    if chosen == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def export_once(spans: Sequence[TraceSpan], service_name: str = SERVICE_NAME) -> bool:
    """Export `spans` in one OTLP request, now, and say whether the collector took them (a
    command re-exporting a finished run's history, not a server: no batching, no global
    provider). Sampled as the control plane would have sampled them."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(
        resource=Resource.create(attributes), id_generator=_id_generator(), shutdown_on_exit=False
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    emit(spans, provider.get_tracer("surefoot.controlplane"))
    finished = memory.get_finished_spans()
    if not finished:
        return True  # none sampled: nothing to send
    exporter = _exporter(protocol())
    try:
        return bool(exporter.export(finished) == SpanExportResult.SUCCESS)
    finally:
        exporter.shutdown()


def shutdown() -> None:
    """Flush what is buffered, for at most SHUTDOWN_SECONDS: a stopping process should not
    lose its last spans, nor wait on a collector that does not answer."""
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


def grpc_client_interceptors() -> list[Any]:
    """Interceptors tracing a synchronous channel's calls, when tracing is on."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import client_interceptor

    return [client_interceptor(tracer_provider=_provider)]


def traced_channel(channel: grpc.Channel, service_name: str) -> grpc.Channel:
    """`channel`, its calls traced as client spans when the environment asks for export
    (setting up this process's tracing as `service_name`); else `channel` itself, at the cost
    of reading two variables."""
    if not setup(service_name):
        return channel
    # The library's interceptor is of its own kind (grpcext), wrapped by its own function.
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    return intercept_channel(channel, *grpc_client_interceptors())


def grpc_aio_client_interceptors() -> list[Any]:
    """Interceptors tracing an asyncio channel's calls, when tracing is on."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_provider))


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


def emit(spans: Sequence[TraceSpan], tracer: Any = None) -> None:
    """Emit the spans; never raises (tracing must not fail a commit's delivery)."""
    tracer = tracer or _tracer
    if tracer is None:
        return
    for span in spans:
        try:
            if isinstance(span, AttemptSpan):
                _emit_attempt(tracer, span)
            elif isinstance(span, WaitSpan):
                _emit_wait(tracer, span)
            else:
                _emit_run(tracer, span)
        except Exception:
            concerns = {"run_id": span.run_id, "trace_id": _trace_id(span)}
            log.warning(
                "tracing: span of run %s not emitted", span.run_id, extra=concerns, exc_info=True
            )


def _trace_id(span: TraceSpan) -> str:
    return span.traceparent.split("-")[1] if isinstance(span, AttemptSpan) else span.trace_id


# What the committer's deliveries call: attempts, runs and waits alike.
emit_attempts = emit


def _nanos(seconds: float) -> int:
    return int(seconds * 1e9)


def _in_run(trace_id: str) -> Any:
    """The context of a span whose parent is the run's root span, sampled as the run is."""
    from opentelemetry.trace import (
        NonRecordingSpan,
        SpanContext,
        TraceFlags,
        set_span_in_context,
    )

    flags = TraceFlags(TraceFlags.SAMPLED if sampling.sampled(trace_id) else 0)
    parent = SpanContext(
        int(trace_id, 16), int(root_span_id(trace_id), 16), is_remote=True, trace_flags=flags
    )
    return set_span_in_context(NonRecordingSpan(parent))


def _start(
    tracer: Any,
    name: str,
    trace_id: str,
    span_id: str,
    parent: Any,
    attributes: dict[str, Any],
    start: int,
) -> Any:
    from opentelemetry.trace import SpanKind

    token = _preset_ids.set((int(trace_id, 16), int(span_id, 16)))
    try:
        return tracer.start_span(
            name, context=parent, kind=SpanKind.INTERNAL, attributes=attributes, start_time=start
        )
    finally:
        _preset_ids.reset(token)


def _emit_attempt(tracer: Any, attempt: AttemptSpan) -> None:
    from opentelemetry.trace import Status, StatusCode

    _, trace_hex, span_hex, _ = attempt.traceparent.split("-")
    ended = _nanos(attempt.ended)
    started = _nanos(attempt.started) if attempt.started else ended
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
    # A step's error may quote what its code sent or got back: masked like a log line.
    message = redact(attempt.error_message)
    if attempt.error_type:
        attributes["error.type"] = attempt.error_type
        attributes["surefoot.error.message"] = message
    name = f"step {attempt.node_id}"
    span = _start(
        tracer, name, trace_hex, span_hex, _in_run(trace_hex), attributes, min(started, ended)
    )
    if attempt.outcome != "completed":
        description = f"{attempt.error_type}: {message}".strip(": ")
        span.set_status(Status(StatusCode.ERROR, description or attempt.outcome))
    span.end(end_time=ended)


def _emit_wait(tracer: Any, wait: WaitSpan) -> None:
    attributes: dict[str, Any] = {
        "surefoot.run_id": wait.run_id,
        "surefoot.workflow": wait.workflow,
        "surefoot.node_id": wait.node_id,
        "surefoot.wait": wait.what,
        **wait.attributes,
    }
    if wait.attempt:
        attributes["surefoot.attempt"] = wait.attempt
    if wait.outcome:
        attributes["surefoot.outcome"] = wait.outcome
    ended = _nanos(wait.ended)
    started = min(_nanos(wait.started), ended)
    name = f"{wait.what} {wait.node_id}"
    parent = _in_run(wait.trace_id)
    span = _start(tracer, name, wait.trace_id, wait.span_id, parent, attributes, started)
    span.end(end_time=ended)


def _emit_run(tracer: Any, run: RunSpan) -> None:
    from opentelemetry.context import Context
    from opentelemetry.trace import Status, StatusCode

    attributes: dict[str, Any] = {
        "surefoot.run_id": run.run_id,
        "surefoot.namespace": run.namespace,
        "surefoot.workflow": run.workflow,
        "surefoot.status": run.status,
    }
    if run.error_type:
        attributes["error.type"] = run.error_type
    ended = _nanos(run.ended)
    started = min(_nanos(run.started), ended)
    span_id = root_span_id(run.trace_id)
    # No parent: the root of the run's trace, sampled by its trace id as the tasks were.
    name = f"run {run.workflow}"
    span = _start(tracer, name, run.trace_id, span_id, Context(), attributes, started)
    if run.status in ("FAILED", "COMPENSATED"):
        description = f"{run.error_type}: {redact(run.error_message)}".strip(": ")
        span.set_status(Status(StatusCode.ERROR, description or run.status))
    elif run.status == "COMPLETED":
        span.set_status(Status(StatusCode.OK))
    span.end(end_time=ended)
