"""Fixtures of the bulk run action tests: PostgreSQL only (they are about the production
store, several control planes and real crashes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test only."""
    with fresh_database(request.param, tmp_path) as url:
        yield url
