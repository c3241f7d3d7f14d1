"""Worker module of test_triage_timeouts.py: a step that says whether its attempt was given
a deadline (the node's `timeout_seconds`), and that declines its first attempt on demand.

Runs in the worker subprocess; it must not import the tests' helpers.
"""

from __future__ import annotations

from typing import Any

from surefoot_worker import NonRetryableError, StepContext, step


@step("e2e-deadline", idempotency="key")
async def report_deadline(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Output (or error message) says whether the attempt has a deadline."""
    has_deadline = ctx.deadline is not None
    if input.get("decline"):
        raise NonRetryableError(f"declined; deadline given: {has_deadline}", type="Declined")
    return {"attempt": ctx.attempt, "deadline_given": has_deadline}
