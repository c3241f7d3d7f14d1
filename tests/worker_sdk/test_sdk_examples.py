"""The example order steps used by the dev mode and the crash tests."""

from __future__ import annotations

import asyncio
import time

import pytest
from surefoot_worker import StepContext
from surefoot_worker.examples import orders


def _context(attempt: int = 1) -> StepContext:
    return StepContext(
        task_id="t1",
        run_id="r1",
        node_id="n1",
        step_type="charge-card",
        step_version="1",
        attempt=attempt,
        idempotency_key="idem-1",
        workflow_name="orders",
        namespace="default",
    )


def test_charge_card_output_uses_the_idempotency_key() -> None:
    output = asyncio.run(orders.charge_card(_context(), {"order_id": "o1", "amount": 12}))
    assert output["order_id"] == "o1"
    assert output["charged"] is True
    assert "idem-1" in output["charge_id"]


def test_reserve_and_ship_derive_their_output_from_the_input() -> None:
    reserved = asyncio.run(orders.reserve_stock(_context(), {"order_id": "o2"}))
    shipped = asyncio.run(orders.ship_order(_context(), {"order_id": "o2"}))
    assert reserved["order_id"] == "o2" and reserved["reserved"] is True
    assert shipped["order_id"] == "o2" and shipped["shipped"] is True


def test_fail_times_fails_until_the_attempt_exceeds_it() -> None:
    for attempt in (1, 2):
        with pytest.raises(orders.TransientError):
            asyncio.run(orders.ship_order(_context(attempt), {"order_id": "o", "fail_times": 2}))
    output = asyncio.run(orders.ship_order(_context(3), {"order_id": "o", "fail_times": 2}))
    assert output["shipped"] is True


def test_sleep_seconds_makes_the_step_take_that_long() -> None:
    started = time.monotonic()
    asyncio.run(orders.reserve_stock(_context(), {"order_id": "o", "sleep_seconds": 0.2}))
    assert time.monotonic() - started >= 0.2
