"""Worker module of the redrive tests: a charge through the outage API, and an unsafe one.

`redrive-charge` is declared ``idempotency="key"`` and sends the task's idempotency key to
the provider, which charges once per key. Its error names the customer, a request id and
the time, as real ones do, so that only the signature groups an outage's failures as one.
`redrive-transfer` does the same but is declared ``idempotency="none"``.

It runs in the worker subprocess and must not import the tests' helpers.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from surefoot_worker import RetryPolicy, StepContext, step

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
FAST = RetryPolicy(max_attempts=2, initial_interval=0.05, max_interval=0.1)


class PaymentUnavailable(Exception):
    """The provider answered with an error status."""


def _charge(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"customer": input["customer"], "amount": input["amount"]}).encode()
    request = urllib.request.Request(
        f"{input['api']}/v1/charges",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": ctx.idempotency_key},
    )
    try:
        with _OPENER.open(request, timeout=30) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        raise PaymentUnavailable(
            f"charge req_{uuid.uuid4().hex[:12]} for {input['customer']} of {input['amount']} "
            f"failed: HTTP {exc.code} at {when}"
        ) from None
    return {"charge_id": answer["id"], "amount": answer["amount"], "attempt": ctx.attempt}


@step("redrive-charge", idempotency="key", retry=FAST)
def charge(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return _charge(ctx, input)


@step("redrive-transfer", idempotency="none", retry=RetryPolicy(max_attempts=1))
def transfer(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    return _charge(ctx, input)
