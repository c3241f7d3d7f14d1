"""Changes committed by a second control-plane process on the same PostgreSQL database reach
the streams of the first as they commit (LISTEN/NOTIFY, law 9): WatchRuns and WatchRun.

The watched control plane runs in the test process with every re-read on a clock an hour
apart, so that only the other process's NOTIFY can bring the changes before the deadline;
the other one is a real `surefoot server` process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from controlplane.api import run_watch
from controlplane.dispatch import run_notices
from tests.api.watch_support import GATES, events_of, start_gated_run, type_name, watch
from tests.connectors.outcome_plane import InProcessControlPlane
from tests.live_runs.live_support import COMPLETED, WAITING, gated_runs, watch_runs
from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry

pytestmark = pytest.mark.postgres


@pytest.fixture
def planes(
    tmp_path: Path, processes: ProcessRegistry, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[InProcessControlPlane, ControlPlane]]:
    """(here, there): one in this process, deaf to anything but NOTIFY; one a real process."""
    monkeypatch.setattr(run_notices, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(run_notices, "SAFETY_SECONDS", 3600.0)
    monkeypatch.setattr(run_watch, "REREAD_SECONDS", 3600.0)
    monkeypatch.setattr(run_watch, "NOTIFIED_REREAD_SECONDS", 3600.0)
    with fresh_database("postgres", tmp_path) as url:
        here = InProcessControlPlane(url).start()
        there = ControlPlane(processes, url)
        there.start()
        try:
            yield here, there
        finally:
            there.stop()
            here.stop()


def listening(here: InProcessControlPlane) -> bool:
    return bool(here._plane._committer.watches.listening)  # type: ignore[union-attr]


def test_runs_changed_by_another_control_plane_reach_a_watch_runs_stream(
    planes: tuple[InProcessControlPlane, ControlPlane],
) -> None:
    here, there = planes
    (earlier,) = gated_runs(there.stub, 1)
    everything = watch_runs(here.stub, workflow_name=GATES)
    waiting = watch_runs(here.stub, workflow_name=GATES, statuses=[WAITING])
    assert everything.first().total == waiting.first().total == 1
    assert_eventually(lambda: listening(here), message="the LISTEN connection is up")

    later = start_gated_run(there.stub)
    assert everything.wait_for(later.run_id, WAITING).current_node == "first"
    waiting.wait_for(later.run_id, WAITING)
    for gate in ("first", "second"):
        later.release(there.stub, gate)
    done = everything.wait_for(later.run_id, COMPLETED)
    assert_eventually(
        lambda: any(c.left_filter and c.run.id == later.run_id for c in waiting.changes()),
        message="the run left the WAITING stream",
    )
    everything.cancel()
    waiting.cancel()

    assert done.HasField("closed_at")
    assert set(everything.table()) == {earlier.run_id, later.run_id}
    assert everything.total() == 2
    assert set(waiting.table()) == {earlier.run_id}
    assert waiting.total() == 1


def test_events_committed_by_another_control_plane_reach_a_watch_run_stream(
    planes: tuple[InProcessControlPlane, ControlPlane],
) -> None:
    here, there = planes
    run = start_gated_run(here.stub)
    stream = watch(here.stub, run.run_id)
    first = next(stream)
    assert_eventually(lambda: listening(here), message="the LISTEN connection is up")

    run.release(there.stub, "first")
    run.release(there.stub, "second")
    rest = list(stream)  # ends by itself after the final event

    seqs = [e.seq for e in events_of([first, *rest])]
    assert seqs == list(range(1, len(seqs) + 1))
    assert type_name(events_of(rest)[-1]) == "RUN_COMPLETED"


def test_a_lost_listen_connection_is_taken_again_and_nothing_is_missed(
    planes: tuple[InProcessControlPlane, ControlPlane],
) -> None:
    here, there = planes
    stream = watch_runs(here.stub, workflow_name=GATES)
    stream.first()
    assert_eventually(lambda: listening(here), message="the LISTEN connection is up")

    # The database drops the listener's connection (as a failover or a proxy would).
    with psycopg.connect(here.database_url.replace("+psycopg", ""), autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query = %s AND datname = current_database()",
            (f"LISTEN {run_notices.CHANNEL}",),
        ).fetchall()
    assert ended == [(True,)]
    # Committed while nobody here may be listening: found by the read after reconnecting.
    (run,) = gated_runs(there.stub, 1)
    assert stream.wait_for(run.run_id, WAITING)
    assert_eventually(lambda: listening(here), message="listening again")
    run.release(there.stub, "first")
    run.release(there.stub, "second")
    stream.wait_for(run.run_id, COMPLETED)
    stream.cancel()
