"""A span per model call, under the span current when the step runs (the attempt's, when the
worker traces), with the model, tokens and outcome, and never the prompt or the reply."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from surefoot_connectors import ai_spans
from surefoot_connectors.ai_call import AiFailure, run_ai_task
from surefoot_connectors.secrets import Secrets

from controlplane.model_server import ModelServer, Reply


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of a provider of this test's own: the process's global one is left alone."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(ai_spans, "tracer", lambda: provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def task_input(server: ModelServer, **overrides: Any) -> dict[str, Any]:
    return {
        "node": "classify",
        "input": {"text": "a secret plan"},
        "user_prompt": "Classify: {{ input.text }}",
        "output_schema": {"type": "object", "required": ["label"]},
        "models": [{"name": "main", "base_url": server.base_url, "model": "gpt-test"}],
        "max_repairs": 1,
        "timeout_seconds": 10.0,
        **overrides,
    }


def test_each_call_is_a_child_span_with_its_model_tokens_and_outcome(
    exported: InMemorySpanExporter,
) -> None:
    with ModelServer() as server:
        server.script("gpt-test", [Reply.text("nope", tokens=(40, 3)), Reply.json({"label": 1})])
        attempt_tracer = ai_spans.tracer()
        with attempt_tracer.start_as_current_span("attempt") as attempt:
            run_ai_task(task_input(server), Secrets({}), "k")

    *calls, parent = exported.get_finished_spans()
    assert parent.name == "attempt"
    assert [span.name for span in calls] == ["chat gpt-test", "chat gpt-test"]
    for span in calls:
        assert span.parent is not None
        assert span.parent.span_id == attempt.get_span_context().span_id
    first, second = (dict(span.attributes or {}) for span in calls)
    assert first["gen_ai.request.model"] == "gpt-test"
    assert (first["surefoot.ai.connection"], first["surefoot.ai.node"]) == ("main", "classify")
    assert (first["surefoot.ai.repair"], first["surefoot.ai.status"]) == (0, "invalid")
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"]) == (40, 3)
    assert (second["surefoot.ai.repair"], second["surefoot.ai.status"]) == (1, "ok")
    # The endpoint is told the call's span as the parent of whatever it traces.
    sent = [r.headers["traceparent"] for r in server.requests("gpt-test")]
    assert sent == [
        f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"
        for c in (span.context for span in calls)
    ]
    recorded = str([dict(span.attributes or {}) for span in calls])
    assert "secret plan" not in recorded and "nope" not in recorded


def test_a_call_without_a_reply_is_an_error_span(exported: InMemorySpanExporter) -> None:
    with ModelServer() as server:
        server.script("gpt-test", [Reply.rate_limited(1)])
        with pytest.raises(AiFailure):
            run_ai_task(task_input(server), Secrets({}), "k")

    (span,) = exported.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    attributes = dict(span.attributes or {})
    assert (attributes["surefoot.ai.status"], attributes["error.type"]) == (
        "http_429",
        "AiRateLimited",
    )
