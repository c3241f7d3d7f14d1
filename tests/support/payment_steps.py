"""Worker module of the exactly-once tests: `e2e-charge` charges through a payment API.

The step is declared ``idempotency="key"`` and keeps that promise the way a real one does:
it sends ``ctx.idempotency_key`` as the provider's ``Idempotency-Key`` header, so that an
attempt run again after a crash gets the first attempt's charge back instead of a second
one. Its input names the API (``api``, the fake of support/payment_api.py), the
``customer`` and the ``amount``.

Like steps.py, whose execution log it writes to, it runs in the worker subprocess and must
not import the tests' helpers.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from surefoot_worker import RetryPolicy, StepContext, step

from tests.support.steps import _record

# Longer than any answer the tests hold back: a held answer must not time out into a retry.
REQUEST_TIMEOUT_SECONDS = 120.0
# The fake provider listens on 127.0.0.1: never send its requests to a configured proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@step(
    "e2e-charge",
    idempotency="key",
    retry=RetryPolicy(max_attempts=5, initial_interval=0.2, max_interval=1.0),
)
def charge(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Charge the customer once, however many attempts it takes."""
    _record(ctx, input, "started")
    try:
        body = json.dumps({"customer": input["customer"], "amount": input["amount"]}).encode()
        request = urllib.request.Request(
            f"{input['api']}/v1/charges",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key},
        )
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            answer = json.load(response)
        output = {"charge_id": answer["id"], "amount": answer["amount"], "attempt": ctx.attempt}
    except BaseException as exc:
        _record(ctx, input, "raised", error=type(exc).__name__)
        raise
    _record(ctx, input, "returned", output=output)
    return output
