"""Fixtures of the database-outage tests: a private PostgreSQL cluster the test may stop.

`database_url` replaces the one of tests/conftest.py, so that its `control_plane` and
`worker` fixtures serve the private cluster's database, never the shared server's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.private_postgres import PrivatePostgres, private_postgres


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of this test only, with an empty `surefoot` database."""
    with private_postgres() as started:
        yield started


@pytest.fixture
def database_url(cluster: PrivatePostgres) -> str:
    return cluster.url
