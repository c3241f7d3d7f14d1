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
import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import grpc
from surefoot_worker import _otlp_bytes

from controlplane.tracing.emission import SpanSink
from controlplane.tracing.export import RecordExport
from controlplane.tracing.spans import AttemptSpan, RunSpan, TraceSpan, WaitSpan

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
_sink: RecordExport | None = None


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
    global _tracer, _provider, _sink
    if _tracer is not None:
        return True
    if not export_configured():
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    chosen = protocol()
    processor = BatchSpanProcessor(_exporter(chosen))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    atexit.register(shutdown)
    _provider = provider
    # The run records' spans (most of them) go their own, cheaper way: tracing.export.
    _sink = RecordExport(_exporter(chosen), provider.resource)
    _tracer = provider.get_tracer("surefoot.controlplane")
    log.info("tracing: exporting spans over OTLP (%s)", chosen)
    return True


def _exporter(chosen: str) -> Any:
    """An OTLP span exporter over `chosen`, which also sends the batches tracing.export wrote
    itself and writes plain spans without the SDK's encoder (surefoot_worker._otlp_bytes)."""
    if chosen == GRPC:
        from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as module
    else:
        from opentelemetry.exporter.otlp.proto.http import trace_exporter as module  # type: ignore[no-redef]
    _otlp_bytes.install(module)
    return module.OTLPSpanExporter()


def export_once(spans: Sequence[TraceSpan], service_name: str = SERVICE_NAME) -> bool:
    """Export `spans` in one OTLP request, now, and say whether the collector took them (a
    command re-exporting a finished run's history, not a server: no batching, no global
    provider). Sampled as the control plane would have sampled them."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    memory = InMemorySpanExporter()
    SpanSink(SimpleSpanProcessor(memory), Resource.create(attributes)).emit(spans)
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
    global _tracer, _provider, _sink
    provider, sink, _tracer, _provider, _sink = _provider, _sink, None, None, None
    if sink is not None:
        sink.shutdown(SHUTDOWN_SECONDS)
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
    """The gRPC server interceptor that traces the calls of traced clients, when tracing
    is on."""
    if _tracer is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [ContinuedCalls(aio_server_interceptor(tracer_provider=_provider))]


class ContinuedCalls(grpc.aio.ServerInterceptor):
    """Traces a call only when its client sent a trace context (`traceparent`): the span
    then continues the client's trace (the CLI, the console, the SDK when they trace).

    A call without one would start a trace of its own, one server span long: the work a run
    does is its own trace already, and that span cost the control plane about 125 µs a
    StartRun, a quarter of tracing's cost in `surefoot bench`.
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if any(key == "traceparent" for key, _ in details.invocation_metadata or ()):
            return await self._inner.intercept_service(continuation, details)
        return await continuation(details)


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


def emit(spans: Sequence[TraceSpan]) -> None:
    """Emit the spans of the runs' records; never raises (tracing must not fail a commit's
    delivery)."""
    sink = _sink
    if sink is not None:
        sink.emit(spans)


# What the committer's deliveries call: attempts, runs and waits alike.
emit_attempts = emit
