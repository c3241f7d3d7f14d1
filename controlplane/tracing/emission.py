"""Spans of runs handed to the OpenTelemetry SDK's span processor as finished spans.

A run's spans are known whole when they are emitted (start, end, ids, status), so they are
built as `ReadableSpan`s and given to the processor that batches and exports them, without the
SDK's span lifecycle (a context, a sampler call, a mutable span per span): this runs on the
committer's thread after each commit, the control plane's busiest. The sampling decision is
the run's (`tracing.sampling`), the one its tasks' `traceparent` carried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from controlplane.logs import redact
from controlplane.tracing import sampling
from controlplane.tracing.spans import AttemptSpan, RunSpan, TraceSpan, WaitSpan, root_span_id

log = logging.getLogger("surefoot.telemetry")

SCOPE = "surefoot.controlplane"


class SpanSink:
    """Builds the spans of run records and ends them into `processor` (a SpanProcessor)."""

    def __init__(self, processor: Any, resource: Any) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import TraceFlags

        self._processor = processor
        self._resource = resource
        self._scope = InstrumentationScope(SCOPE)
        self._flags = TraceFlags(TraceFlags.SAMPLED)

    def emit(self, spans: Sequence[TraceSpan]) -> None:
        """End the spans of sampled runs; never raises (tracing must not fail a delivery)."""
        for span in spans:
            try:
                trace_id = trace_id_of(span)
                if sampling.sampled(trace_id):
                    self._processor.on_end(self._build(span, trace_id))
            except Exception:
                concerns = {"run_id": span.run_id, "trace_id": trace_id_of(span)}
                log.warning(
                    "tracing: span of run %s not emitted",
                    span.run_id,
                    extra=concerns,
                    exc_info=True,
                )

    def _build(self, span: TraceSpan, trace_id: str) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind

        name, span_id, attributes, status = describe(span)
        trace = int(trace_id, 16)
        context = SpanContext(trace, int(span_id, 16), is_remote=False, trace_flags=self._flags)
        parent = None
        if parent_id := parent_span_id(span, trace_id):
            parent = SpanContext(
                trace, int(parent_id, 16), is_remote=False, trace_flags=self._flags
            )
        started, ended = span_nanos(span)
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            kind=SpanKind.INTERNAL,
            status=status,
            start_time=started,
            end_time=ended,
            instrumentation_scope=self._scope,
        )


def parent_span_id(span: TraceSpan, trace_id: str) -> str:
    """The run's root span for every span but the root itself ("")."""
    return "" if isinstance(span, RunSpan) else root_span_id(trace_id)


def span_nanos(span: TraceSpan) -> tuple[int, int]:
    """(start, end) in epoch nanoseconds; an attempt that never started lasts no time."""
    ended = int(span.ended * 1e9)
    return (min(int(span.started * 1e9), ended) if span.started else ended), ended


def trace_id_of(span: TraceSpan) -> str:
    return span.traceparent.split("-")[1] if isinstance(span, AttemptSpan) else span.trace_id


def describe(span: TraceSpan) -> tuple[str, str, dict[str, Any], Any]:
    """(name, span id, attributes, status) of a record's span."""
    if isinstance(span, AttemptSpan):
        return _attempt(span)
    if isinstance(span, WaitSpan):
        return _wait(span)
    return _run(span)


def _status(error: bool, description: str = "") -> Any:
    from opentelemetry.trace import Status, StatusCode

    return Status(StatusCode.ERROR, description) if error else Status(StatusCode.UNSET)


def _attempt(attempt: AttemptSpan) -> tuple[str, str, dict[str, Any], Any]:
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
    status = _status(False)
    if attempt.outcome != "completed":
        # A step's error may quote what its code sent or got back: masked like a log line.
        message = redact(attempt.error_message)
        if attempt.error_type:
            attributes["error.type"] = attempt.error_type
            attributes["surefoot.error.message"] = message
        description = f"{attempt.error_type}: {message}".strip(": ")
        status = _status(True, description or attempt.outcome)
    span_id = attempt.traceparent.split("-")[2]
    return f"step {attempt.node_id}", span_id, attributes, status


def _wait(wait: WaitSpan) -> tuple[str, str, dict[str, Any], Any]:
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
    return f"{wait.what} {wait.node_id}", wait.span_id, attributes, _status(False)


def _run(run: RunSpan) -> tuple[str, str, dict[str, Any], Any]:
    from opentelemetry.trace import Status, StatusCode

    attributes: dict[str, Any] = {
        "surefoot.run_id": run.run_id,
        "surefoot.namespace": run.namespace,
        "surefoot.workflow": run.workflow,
        "surefoot.status": run.status,
    }
    if run.error_type:
        attributes["error.type"] = run.error_type
    if run.status in ("FAILED", "COMPENSATED"):
        description = f"{run.error_type}: {redact(run.error_message)}".strip(": ")
        status = _status(True, description or run.status)
    else:
        status = Status(StatusCode.OK if run.status == "COMPLETED" else StatusCode.UNSET)
    return f"run {run.workflow}", root_span_id(run.trace_id), attributes, status
