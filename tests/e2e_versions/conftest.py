"""Fixtures of the acceptance tests of versions, routing and idempotency.

These tests are about what survives crashes of real processes on the production store, so
they run on PostgreSQL only: `database_url` replaces the one of tests/conftest.py that runs
each test on both stores. The control plane knows bearer tokens (support/approval_auth.py),
because one test decides an approval; its `stub` acts as the operator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.approval_auth import AuthControlPlane, write_auth_file
from tests.support.databases import fresh_database
from tests.support.payment_api import FakePaymentApi
from tests.support.processes import ProcessRegistry


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test only."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """`surefoot server --auth-file` on the test's database; leases last 2 s.

    It replaces the control plane of tests/conftest.py, so that its `worker` fixture connects
    workers to this one. Stopped with SIGTERM, which must end it cleanly.
    """
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


@pytest.fixture
def payment_api() -> Iterator[FakePaymentApi]:
    """A fake payment provider on a free local port; answers it holds are released at the end."""
    api = FakePaymentApi()
    try:
        yield api
    finally:
        api.close()
