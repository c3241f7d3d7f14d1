"""Fixtures of the redrive tests: PostgreSQL only (they are about the production store and
real crashes), and a payment provider in an outage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.support.databases import fresh_database


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test only."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def payment_api() -> Iterator[OutagePaymentApi]:
    """A fake payment provider on a free local port, down until the test says it recovered."""
    api = OutagePaymentApi()
    try:
        yield api
    finally:
        api.close()
