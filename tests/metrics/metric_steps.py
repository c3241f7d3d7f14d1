"""Steps of the metrics tests' worker (`surefoot worker metric_steps.py`).

What an attempt does is decided by its input: ``fail_first`` fails the first attempt (retried),
``dead`` fails every attempt with a non-retryable error (dead-lettered), ``hold_seconds``
keeps the worker busy that long first. Every error message
carries the input's ``secret``, so that a test can prove no message reaches a metric label.

Imported by the worker subprocess only; it must not import the tests' helpers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from surefoot_worker import NonRetryableError, StepContext, step


class GatewayTimeout(Exception):
    """A transient failure: retried."""


@step("metrics-charge", idempotency="key")
async def charge(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    secret = input.get("secret", "")
    await asyncio.sleep(float(input.get("hold_seconds") or 0))
    if input.get("dead"):
        raise NonRetryableError(f"card declined for token {secret}", type="CardDeclined")
    if input.get("fail_first") and ctx.attempt == 1:
        raise GatewayTimeout(f"gateway timed out for token {secret}")
    return {"charged": True, "attempt": ctx.attempt}


@step("metrics-notify", idempotency="natural")
def notify(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return {"notified": True}
