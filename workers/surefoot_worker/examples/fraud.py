"""The step that version 2 of the order workflow adds (``orders-v2.yaml``): a fraud check.

Kept apart from ``orders.py`` so that module holds exactly the steps of ``orders@1``.
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import StepContext, step


@step("fraud-score", idempotency="natural")
async def fraud_score(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Score the order for fraud; scoring the same order again gives the same score."""
    amount = float(input.get("amount") or 0)
    return {"order_id": input.get("order_id"), "score": 0.9 if amount > 10_000 else 0.1}
