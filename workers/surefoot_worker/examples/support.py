"""The support example's step (``support.yaml``): put a classified ticket on a team's queue.

It stands in for a helpdesk API: the ticket id it returns is derived from the idempotency
key, so a retried attempt assigns the same ticket once, as a deduping API would.
"""

from __future__ import annotations

import hashlib
from typing import Any

from surefoot_worker import StepContext, step


@step("assign-ticket", idempotency="key")
async def assign_ticket(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Assign the ticket to `queue`; high urgency pages the team's on-call."""
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:10]
    return {
        "ticket_id": f"tk_{digest}",
        "queue": input.get("queue"),
        "urgency": input.get("urgency"),
        "paged_on_call": input.get("urgency") == "high",
    }
