"""ListWorkers' `last_heard`: when a worker last sent anything on its stream.

Any message counts (a heartbeat naming no task, credit), not only task heartbeats. The
control plane keeps the time in memory per message and writes it with the stream's periodic
confirmation, never per message: between two confirmations the row does not change, and it
never says it heard something later than it was confirmed. Any control plane of the database
lists it (law 9).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import worker_admin_service_pb2 as wapb
from surefoot.v1 import worker_service_pb2 as wpb

from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry, run_cli
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.workers_view.support import listed

# Timestamps go through the database and protobuf; allow for their rounding.
CLOCK_TOLERANCE = 0.002
WORKER = "quiet-worker"


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def connect(plane: ControlPlane, worker_id: str = WORKER) -> RawWorkerStream:
    """A stream that sends its Hello and nothing else until the test says so."""
    stream = RawWorkerStream(plane.channel, worker_id, [declaration("heard-step")])
    stream.next_of("welcome")
    return stream


def shown(plane: ControlPlane, worker_id: str = WORKER) -> wapb.ConnectedWorker | None:
    return listed(plane).get(worker_id)


def heard_since(plane: ControlPlane, moment: float) -> wapb.ConnectedWorker:
    """The worker's row once it says it heard from the worker at `moment` or later."""

    def heard() -> wapb.ConnectedWorker | None:
        worker = shown(plane)
        if worker is None or seconds(worker.last_heard) < moment - CLOCK_TOLERANCE:
            return None
        return worker

    return assert_eventually(heard, message=f"last heard at or after {moment}")


def test_any_message_moves_last_heard_and_only_a_message_does(
    control_plane: ControlPlane,
) -> None:
    stream = connect(control_plane)
    try:
        first = assert_eventually(lambda: shown(control_plane), message="the worker is listed")
        # The Hello is the first message heard.
        assert first.last_heard == first.connected_since
        # Silence: the row is confirmed again and again, last heard stays at the Hello.
        quiet = assert_eventually(
            lambda: (
                worker
                if (worker := shown(control_plane)) is not None
                and seconds(worker.last_seen) > seconds(first.last_seen) + 1
                else None
            ),
            message="two confirmations later",
        )
        assert quiet.last_heard == first.connected_since

        # A heartbeat naming no task: no lease to extend (no last heartbeat), but heard.
        sent = time.time()
        stream.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat()))
        heard = heard_since(control_plane, sent)
        assert not heard.HasField("last_heartbeat") and heard.in_flight == 0
        assert seconds(heard.last_heard) <= seconds(heard.last_seen) + CLOCK_TOLERANCE

        # Credit is a message too.
        sent = time.time()
        stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=1)))
        again = heard_since(control_plane, sent)
        assert again.credit == 1
        assert again.connected_since == first.connected_since
    finally:
        stream.close()


def test_last_heard_is_written_with_the_confirmation_not_per_message(
    control_plane: ControlPlane,
) -> None:
    """Messages stream in while the listing is read over and over: last heard changes only
    when last seen does (a confirmation), and is never later than it."""
    stream = connect(control_plane)
    try:
        assert_eventually(lambda: shown(control_plane), message="the worker is listed")
        observed: list[tuple[float, float]] = []
        deadline = time.monotonic() + 60
        while len({seen for seen, _ in observed}) < 4:
            assert time.monotonic() < deadline, f"too few confirmations seen: {observed}"
            stream.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat()))
            worker = shown(control_plane)
            assert worker is not None
            observed.append((seconds(worker.last_seen), seconds(worker.last_heard)))
        for seen, heard in observed:
            assert heard <= seen + CLOCK_TOLERANCE, (seen, heard)
        for (seen, heard), (next_seen, next_heard) in zip(observed, observed[1:], strict=False):
            if next_seen == seen:
                assert next_heard == heard, "last heard was written between two confirmations"
        # It did move with the confirmations: the messages were heard.
        assert len({heard for _, heard in observed}) >= 3, observed
    finally:
        stream.close()


def test_workers_list_wide_and_json_show_last_heard(control_plane: ControlPlane) -> None:
    stream = connect(control_plane)
    try:
        sent = time.time()
        stream.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat()))
        worker = heard_since(control_plane, sent)
        address = ("--address", control_plane.address)

        wide = run_cli("workers", "list", "-o", "wide", *address)
        assert wide.returncode == 0, wide.stderr
        header, *rows = wide.stdout.splitlines()
        assert header.split()[-3:] == ["LAST", "HEARD", "SESSION"], header
        row = next(line for line in rows if line.startswith(WORKER))
        assert worker.session_id in row
        assert row.split()[-2].endswith("Z"), row

        plain = run_cli("workers", "list", *address)
        assert plain.returncode == 0, plain.stderr
        assert "LAST HEARD" not in plain.stdout and worker.session_id not in plain.stdout

        document = json.loads(run_cli("workers", "list", "-o", "json", *address).stdout)
        (entry,) = document["workers"]
        assert entry["last_heard"].endswith("Z") and entry["session_id"] == worker.session_id
    finally:
        stream.close()


# -- several control planes on one database (PostgreSQL, law 9) ---------------------------


@pytest.fixture
def two_planes(tmp_path: Path, processes: ProcessRegistry) -> Iterator[tuple[ControlPlane, ...]]:
    with fresh_database("postgres", tmp_path) as url:
        planes = (ControlPlane(processes, url), ControlPlane(processes, url))
        for plane in planes:
            plane.start()
        yield planes
        processes.kill_all()


@pytest.mark.postgres
def test_another_control_plane_lists_what_the_holding_one_heard(
    two_planes: tuple[ControlPlane, ControlPlane],
) -> None:
    holding, asked = two_planes
    stream = connect(holding)
    try:
        assert_eventually(lambda: shown(asked), message="the other control plane lists it")
        sent = time.time()
        stream.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat()))
        through_asked = heard_since(asked, sent)
        assert through_asked.control_plane != ""
        assert seconds(through_asked.last_heard) <= seconds(through_asked.last_seen) + (
            CLOCK_TOLERANCE
        )
    finally:
        stream.close()
