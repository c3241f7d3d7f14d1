"""The soak the project carries for itself: nothing lost, nothing stuck, nobody charged twice
while workers and the control plane are SIGKILLed (and, in long mode, PostgreSQL restarted).

The short mode runs in the normal suite (under a minute, on the shared PostgreSQL server
with a database of its own). The long mode runs on demand, for minutes, on a private
PostgreSQL cluster that it restarts as after a crash:

    SUREFOOT_SOAK=long uv run pytest tests/soak -m soak_long
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.soak.chaos import Soak, SoakPlan, SoakReport
from tests.support.databases import fresh_database
from tests.support.payment_api import FakePaymentApi
from tests.support.private_postgres import private_postgres
from tests.support.processes import ControlPlane, ProcessRegistry

SHORT = SoakPlan(
    chaos_seconds=24.0,
    starts_per_second=4.0,
    workers=2,
    worker_kill_every=3.0,
    control_plane_kill_every=9.0,
    drain_seconds=20.0,
)
LONG = SoakPlan(
    chaos_seconds=float(os.environ.get("SUREFOOT_SOAK_SECONDS", "240")),
    starts_per_second=8.0,
    workers=3,
    worker_kill_every=3.0,
    control_plane_kill_every=20.0,
    database_restart_every=45.0,
    drain_seconds=60.0,
)


def announce(report: SoakReport, capsys: pytest.CaptureFixture[str]) -> None:
    """The soak's figures, printed whatever the test's capture settings."""
    with capsys.disabled():
        print(f"\n{report.summary()}")


@pytest.mark.postgres
def test_soak_short(
    tmp_path: Path,
    processes: ProcessRegistry,
    payment_api: FakePaymentApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with fresh_database("postgres", tmp_path) as url:
        control_plane = ControlPlane(processes, url)
        control_plane.start()
        try:
            report = Soak(SHORT, processes, control_plane, payment_api).run()
        finally:
            processes.kill_all()
    announce(report, capsys)
    assert report.clean, report.details()
    # The chaos bit: processes were killed with attempts in flight.
    assert report.worker_kills and report.control_plane_kills, report.summary()
    assert report.attempts_lost, report.summary()


@pytest.mark.soak_long
@pytest.mark.skipif(
    os.environ.get("SUREFOOT_SOAK") != "long", reason="long soak: set SUREFOOT_SOAK=long"
)
def test_soak_long(
    processes: ProcessRegistry,
    payment_api: FakePaymentApi,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with private_postgres() as cluster:
        control_plane = ControlPlane(processes, cluster.url)
        control_plane.start()
        try:
            report = Soak(LONG, processes, control_plane, payment_api, cluster).run()
        finally:
            processes.kill_all()
    announce(report, capsys)
    assert report.clean, report.details()
    assert report.database_restarts, report.summary()
