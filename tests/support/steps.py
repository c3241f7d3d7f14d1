"""The steps that the end-to-end tests' worker processes run (`surefoot worker steps.py`).

What an attempt does is decided by its input, so that one worker module serves every test:

- ``trail``: a list; the output is ``{"trail": trail + [node id], "attempt": n}``, so a test
  can see that a step's input was derived from the previous step's output;
- ``sleep_seconds``: sleep that long first, heartbeating, but only on attempts up to
  ``sleep_attempts`` (all attempts when absent), so a retried attempt can be quick;
- ``fail_times``: raise FlakyDependency (retryable) until the attempt number exceeds it;
- ``fail_always``: raise FlakyDependency on every attempt;
- ``non_retryable``: raise NonRetryableError with type CardDeclined;
- ``permanent``: raise PermanentFailure, which a retry policy can list as non-retryable.

Every execution appends JSON lines to the file named by SUREFOOT_E2E_EXECUTION_LOG: one when
it starts and one when it returns or raises. Each line is a single O_APPEND write, so lines of
concurrent attempts and of several worker processes never interleave, and a test can count
how often a step really ran, across processes and crashes.

This module is imported by the worker subprocess only; it must not import the tests' helpers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from surefoot_worker import NonRetryableError, StepContext, step

EXECUTION_LOG_ENV = "SUREFOOT_E2E_EXECUTION_LOG"
# The worker heartbeats leases on its own; the details show progress in the attempt.
HEARTBEAT_EVERY_SECONDS = 0.2


class FlakyDependency(Exception):
    """A transient failure: the default policy retries it."""


class PermanentFailure(Exception):
    """A failure that a definition's retry policy may declare non-retryable."""


class StepCancelled(Exception):
    """A plain handler stops this way when the control plane cancels its attempt."""


def _record(ctx: StepContext, input: Any, phase: str, **extra: Any) -> None:
    path = os.environ.get(EXECUTION_LOG_ENV)
    if not path:
        return
    entry = {
        "phase": phase,
        "run_id": ctx.run_id,
        "node_id": ctx.node_id,
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
        "step_type": ctx.step_type,
        "input": input,
        "pid": os.getpid(),
        "time": time.time(),
        **extra,
    }
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def _sleep_seconds(ctx: StepContext, input: dict[str, Any]) -> float:
    seconds = float(input.get("sleep_seconds") or 0)
    last_sleeping_attempt = input.get("sleep_attempts")
    if last_sleeping_attempt is not None and ctx.attempt > int(last_sleeping_attempt):
        return 0.0
    return seconds


def _outcome(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """The output of the attempt, or the exception its input asks for."""
    if input.get("fail_always") or ctx.attempt <= int(input.get("fail_times") or 0):
        raise FlakyDependency(f"{ctx.node_id} attempt {ctx.attempt}: the dependency is down")
    if input.get("non_retryable"):
        raise NonRetryableError(f"{ctx.node_id}: card 4242 declined", type="CardDeclined")
    if input.get("permanent"):
        raise PermanentFailure(f"{ctx.node_id}: the order no longer exists")
    return {"trail": [*input.get("trail", []), ctx.node_id], "attempt": ctx.attempt}


@step("e2e-work", idempotency="key")
async def work(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """An async step shaped by its input (see the module docstring)."""
    _record(ctx, input, "started")
    try:
        deadline = time.monotonic() + _sleep_seconds(ctx, input)
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, HEARTBEAT_EVERY_SECONDS))
            ctx.heartbeat({"seconds_left": round(max(left, 0), 3)})
        output = _outcome(ctx, input)
    except BaseException as exc:
        _record(ctx, input, "raised", error=type(exc).__name__)
        raise
    _record(ctx, input, "returned", output=output)
    return output


@step("e2e-work-sync", idempotency="natural")
def work_sync(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """The same as e2e-work as a plain function, which the SDK runs in a thread."""
    _record(ctx, input, "started")
    try:
        deadline = time.monotonic() + _sleep_seconds(ctx, input)
        while (left := deadline - time.monotonic()) > 0 and not ctx.is_cancelled:
            ctx.cancelled.wait(min(left, HEARTBEAT_EVERY_SECONDS))
            ctx.heartbeat({"seconds_left": round(max(left, 0), 3)})
        if ctx.is_cancelled:
            raise StepCancelled(f"{ctx.node_id} attempt {ctx.attempt} stopped: cancelled")
        output = _outcome(ctx, input)
    except BaseException as exc:
        _record(ctx, input, "raised", error=type(exc).__name__)
        raise
    _record(ctx, input, "returned", output=output)
    return output
