"""Worker module of the tests in tests/e2e_waits: the steps of steps.py plus a compensation.

`surefoot worker saga_steps.py` serves e2e-work and e2e-work-sync (imported from steps.py,
which the worker's loader finds beside this file) and:

- ``e2e-undo``: a compensating step. Its input is shaped like e2e-work's (``sleep_seconds``
  and ``sleep_attempts`` make an attempt slow, so a test can kill its worker mid-way). When
  it finishes it applies its effect: one line in ``effects.jsonl`` beside the execution log,
  written every time, deduplicated by nobody, so that a test sees an effect applied twice.

Like steps.py it runs in the worker subprocess and must not import the tests' helpers.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from surefoot_worker import StepContext, step

from tests.support.steps import EXECUTION_LOG_ENV, HEARTBEAT_EVERY_SECONDS, _record, work, work_sync

__all__ = ["undo", "work", "work_sync"]

EFFECTS_FILE = "effects.jsonl"


def _apply_effect(ctx: StepContext, input: Any) -> None:
    log = os.environ.get(EXECUTION_LOG_ENV)
    if not log:
        return
    entry = {
        "run_id": ctx.run_id,
        "node_id": ctx.node_id,
        "attempt": ctx.attempt,
        "idempotency_key": ctx.idempotency_key,
        "input": input,
        "pid": os.getpid(),
        "time": time.time(),
    }
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    descriptor = os.open(Path(log).with_name(EFFECTS_FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


@step("e2e-undo", idempotency="key")
async def undo(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Undo what a step did: slow on the attempts the input says, then apply the effect."""
    # The same log as e2e-work, so that a test reads steps and compensations in one order.
    _record(ctx, input, "started")
    try:
        seconds = float(input.get("sleep_seconds") or 0)
        last_slow_attempt = input.get("sleep_attempts")
        if last_slow_attempt is not None and ctx.attempt > int(last_slow_attempt):
            seconds = 0.0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, HEARTBEAT_EVERY_SECONDS))
            ctx.heartbeat({"seconds_left": round(max(left, 0), 3)})
        _apply_effect(ctx, input)
        output = {"undone": input.get("undo"), "attempt": ctx.attempt}
    except BaseException as exc:
        _record(ctx, input, "raised", error=type(exc).__name__)
        raise
    _record(ctx, input, "returned", output=output)
    return output
