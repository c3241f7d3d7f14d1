"""Fixtures of the soak: the payment stand-in and a control plane on a database of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.soak.chaos import SlowPaymentApi


@pytest.fixture
def payment_api() -> Iterator[SlowPaymentApi]:
    """A payment provider stand-in on a free local port, counting charges per key."""
    api = SlowPaymentApi()
    try:
        yield api
    finally:
        api.close()
