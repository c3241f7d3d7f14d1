"""Steps of the tracing tests' worker process (`surefoot worker traced_steps.py`).

Each handler opens a span of its own, as an application instrumenting its HTTP or database
client would, and appends the task's traceparent to the file named by TRACED_STEPS_LOG.
A step fails while its attempt number is at most the input's ``fail_times``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from opentelemetry import trace
from surefoot_worker import StepContext, step

LOG_ENV = "TRACED_STEPS_LOG"
tracer = trace.get_tracer("traced_steps")


class DependencyDown(Exception):
    """A transient failure: the default policy retries it."""


def _run(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    line = json.dumps(
        {
            "task_id": ctx.task_id,
            "node_id": ctx.node_id,
            "attempt": ctx.attempt,
            "run_id": ctx.run_id,
            "traceparent": ctx.traceparent,
        }
    )
    with open(os.environ[LOG_ENV], "a") as log:
        log.write(line + "\n")
    with tracer.start_as_current_span(f"user work {ctx.node_id}"):
        if ctx.attempt <= int(input.get("fail_times") or 0):
            raise DependencyDown(f"{ctx.node_id} attempt {ctx.attempt}: the dependency is down")
    return {"trail": [*input.get("trail", []), ctx.node_id]}


@step("traced-async", idempotency="key")
async def traced_async(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, input)


@step("traced-sync", idempotency="key")
def traced_sync(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, input)
