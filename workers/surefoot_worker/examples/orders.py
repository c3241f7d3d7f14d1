"""An order workflow's steps: reserve stock, charge the card, ship.

``charge-card`` also serves the onboarding example (``onboarding.py``).

The handlers are fast and deterministic so that the dev mode and the benchmarks measure the
engine, not the steps. Two input fields let tests shape an attempt:

- ``sleep_seconds``: the step sleeps that long first (a step "in progress" for crash tests);
- ``fail_times``: the step raises until its attempt number exceeds it (retries).
"""

from __future__ import annotations

import asyncio
from typing import Any

from surefoot_worker import StepContext, step


class TransientError(Exception):
    """A failure the example raises on purpose; the default retry policy retries it."""


async def _shape_attempt(ctx: StepContext, input: dict[str, Any]) -> None:
    sleep_seconds = input.get("sleep_seconds")
    if sleep_seconds:
        await asyncio.sleep(float(sleep_seconds))
    fail_times = int(input.get("fail_times") or 0)
    if ctx.attempt <= fail_times:
        raise TransientError(f"attempt {ctx.attempt} of {ctx.step_type} fails on purpose")


@step("reserve-stock", idempotency="natural")
async def reserve_stock(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Reserve the order's items; reserving the same order twice holds the stock once."""
    await _shape_attempt(ctx, input)
    return {"order_id": input.get("order_id"), "reserved": True, "items": input.get("items", [])}


@step("charge-card", idempotency="key")
async def charge_card(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Charge the customer; the idempotency key makes a retried charge a no-op downstream.

    Shared with the onboarding example, so it echoes whichever reference it is given: the
    order id, the customer id or both.
    """
    await _shape_attempt(ctx, input)
    references: dict[str, Any] = {k: input[k] for k in ("order_id", "customer_id") if k in input}
    return {
        **references,
        "charged": True,
        "amount": input.get("amount", 0),
        "charge_id": f"ch_{ctx.idempotency_key}",
    }


@step("ship-order", idempotency="key")
async def ship_order(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Hand the order to the carrier; the idempotency key dedupes the shipment."""
    await _shape_attempt(ctx, input)
    return {
        "order_id": input.get("order_id"),
        "shipped": True,
        "tracking_number": f"trk_{ctx.idempotency_key}",
    }
