"""The fake payment provider of support/payment_api.py, with an outage switch.

While `down`, every charge is answered 503 without charging; customers in `failing` keep
being answered 503 after it recovers (an incident that is half fixed). A charge that is
answered 200 is made once per idempotency key, as before.
"""

from __future__ import annotations

from typing import Any

from tests.support.payment_api import FakePaymentApi


class OutagePaymentApi(FakePaymentApi):
    def __init__(self) -> None:
        self.down = True
        self.failing: set[str] = set()
        self.refused = 0
        super().__init__()

    def recover(self, still_failing: set[str] | None = None) -> None:
        with self._lock:
            self.failing = set(still_failing or ())
            self.down = False

    def _charge(self, key: str, customer: str, amount: int) -> tuple[int, dict[str, Any], bool]:
        with self._lock:
            if self.down or customer in self.failing:
                self.refused += 1
                return 503, {"error": "service unavailable"}, False
        return super()._charge(key, customer, amount)
