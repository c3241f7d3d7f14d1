"""Two control planes on one PostgreSQL database (law 9), for what one must learn from the
other: declarations, cancels for workers connected to the other, failover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry


@pytest.fixture
def planes(tmp_path: Path, processes: ProcessRegistry) -> Iterator[list[ControlPlane]]:
    with fresh_database("postgres", tmp_path) as url:
        started = [ControlPlane(processes, url) for _ in range(2)]
        for plane in started:
            plane.start()
        yield started
        for plane in started:
            plane.stop()
