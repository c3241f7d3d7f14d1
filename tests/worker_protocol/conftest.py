"""A control plane whose leases outlast any test step: a raw stream that does not heartbeat
keeps its tasks unless the test means otherwise."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import ControlPlane, ProcessRegistry


@pytest.fixture
def server(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    plane = ControlPlane(processes, database_url, lease_seconds=60.0)
    plane.start()
    yield plane
    plane.stop()
