"""Steps of the tracing tests' worker process (`surefoot worker traced_steps.py`).

Each handler opens a span of its own, as an application instrumenting its HTTP or database
client would, and appends the task's traceparent to the file named by TRACED_STEPS_LOG.
A step fails while its attempt number is at most the input's ``fail_times`` (saying the input's
``error_message``, if any), and the async step first sleeps ``sleep_seconds`` on attempts up to
``sleep_attempts``.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from opentelemetry import trace
from surefoot_worker import StepContext, step

LOG_ENV = "TRACED_STEPS_LOG"
tracer = trace.get_tracer("traced_steps")


class DependencyDown(Exception):
    """A transient failure: the default policy retries it."""


def _log(ctx: StepContext, phase: str) -> None:
    line = json.dumps(
        {
            "task_id": ctx.task_id,
            "node_id": ctx.node_id,
            "attempt": ctx.attempt,
            "run_id": ctx.run_id,
            "traceparent": ctx.traceparent,
            "phase": phase,
        }
    )
    with open(os.environ[LOG_ENV], "a") as log:
        log.write(line + "\n")


def _run(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    _log(ctx, "running")
    with tracer.start_as_current_span(f"user work {ctx.node_id}"):
        if ctx.attempt <= int(input.get("fail_times") or 0):
            default = f"{ctx.node_id} attempt {ctx.attempt}: the dependency is down"
            raise DependencyDown(str(input.get("error_message") or default))
    return {"trail": [*input.get("trail", []), ctx.node_id]}


@step("traced-async", idempotency="key")
async def traced_async(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    if ctx.attempt <= int(input.get("sleep_attempts") or 0):
        _log(ctx, "sleeping")
        await asyncio.sleep(float(input.get("sleep_seconds") or 0))
    return _run(ctx, input)


@step("traced-sync", idempotency="key")
def traced_sync(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return _run(ctx, input)
