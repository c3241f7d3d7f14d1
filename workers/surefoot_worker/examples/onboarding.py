"""Customer onboarding steps and their compensations, for the saga example of `surefoot dev`.

The workflow (``onboarding.yaml``) creates a customer, waits for a manager's approval, charges
the card, provisions infrastructure and sends a welcome email. Each step has a compensation
that undoes it in the world (mark the customer cancelled, refund, deprovision, send a "we hit
a snag" email), which the engine runs in reverse order when the run fails late.

The handlers stand in for real APIs: they are fast and return what the API would, derived
from their input. Where a real API would dedupe a repeated call, they derive the id they
return from ``ctx.idempotency_key``, so that a retried attempt returns the same customer,
charge or message id, as the real call would. A run input with ``"fail_provisioning": true``
makes provisioning fail without retry, so the saga unwinds.
"""

from __future__ import annotations

import hashlib
from typing import Any

from surefoot_worker import NonRetryableError, StepContext, step

# The card is charged by the same step as in the orders example: one step type, one
# implementation, used by both workflows.
from surefoot_worker.examples.orders import charge_card

__all__ = [
    "charge_card",
    "create_customer",
    "deprovision_infrastructure",
    "mark_customer_cancelled",
    "provision_infrastructure",
    "refund_card",
    "send_snag_email",
    "send_welcome_email",
]


def _id(prefix: str, ctx: StepContext) -> str:
    """The id a deduping API would return for this call: the same for every attempt."""
    return f"{prefix}_{hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:12]}"


@step("create-customer", idempotency="key")
async def create_customer(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Create the customer record; the CRM dedupes creations on the idempotency key."""
    return {
        "customer_id": _id("cus", ctx),
        "name": input.get("customer", ""),
        "email": input.get("email", ""),
        "plan": input.get("plan", "starter"),
    }


@step("provision-infrastructure", idempotency="key")
async def provision_infrastructure(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Create the customer's workspace; the cloud API dedupes on the idempotency key."""
    if input.get("fail_provisioning"):
        # Not worth retrying: the workflow routes this failure to compensation.
        raise NonRetryableError(
            f"no capacity for plan {input.get('plan')!r} in region {input.get('region')!r}",
            type="ProvisioningFailed",
        )
    return {
        "customer_id": input.get("customer_id"),
        "workspace_id": _id("ws", ctx),
        "plan": input.get("plan"),
        "region": input.get("region"),
    }


@step("send-welcome-email", idempotency="key")
async def send_welcome_email(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Send the welcome email; the mail provider dedupes on the idempotency key."""
    return {"to": input.get("email"), "template": "welcome", "message_id": _id("msg", ctx)}


# --- compensations ---------------------------------------------------------------------------


@step("mark-customer-cancelled", idempotency="natural")
async def mark_customer_cancelled(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Set the customer's status to cancelled; setting it twice changes nothing more."""
    return {"customer_id": input.get("customer_id"), "status": "cancelled"}


@step("refund-card", idempotency="key")
async def refund_card(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Refund a charge; the payment provider dedupes refunds on the idempotency key."""
    return {
        "refund_id": _id("re", ctx),
        "charge_id": input.get("charge_id"),
        "amount": input.get("amount", 0),
    }


@step("deprovision-infrastructure", idempotency="natural")
async def deprovision_infrastructure(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Delete the workspace; deleting a deleted workspace is a no-op."""
    return {"workspace_id": input.get("workspace_id"), "deprovisioned": True}


@step("send-snag-email", idempotency="key")
async def send_snag_email(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Tell the customer that onboarding hit a snag; deduped on the idempotency key."""
    return {"to": input.get("email"), "template": "snag", "message_id": _id("msg", ctx)}
