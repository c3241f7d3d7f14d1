"""WatchRun over a run of about a thousand events, its stream cut at random points and
resumed from the last seq seen, while a second control plane on the same database commits
half of the run's changes: every event arrives once, in order."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.api.bench_watch import WORKFLOW, definition
from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.runs import history, register, start_run
from tests.support.waits import send_event

WAITS = 500  # each delivered event adds two history events
STREAM_TIMEOUT = 120.0


@pytest.fixture
def planes(tmp_path: Path, processes: ProcessRegistry) -> Iterator[list[ControlPlane]]:
    """Two control planes on one PostgreSQL database (law 9)."""
    with fresh_database("postgres", tmp_path) as url:
        started = [ControlPlane(processes, url) for _ in range(2)]
        for plane in started:
            plane.start()
        yield started
        for plane in started:
            plane.stop()


@pytest.mark.postgres
def test_a_long_run_watched_through_cuts_yields_every_event_once_in_order(
    planes: list[ControlPlane],
) -> None:
    here, there = planes
    register(here.stub, definition(WAITS))  # type: ignore[arg-type]
    key = uuid.uuid4().hex
    run_id = start_run(here.stub, WORKFLOW, {"key": key})

    def send_all() -> None:
        for index in range(WAITS):
            # Every other change is committed by the other control plane.
            send_event((here if index % 2 else there).stub, "tick", key, {"n": index})

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    cuts = random.Random(20261206)
    seen: list[int] = []
    ended = False
    while not ended:
        stream = here.stub.WatchRun(
            ws.WatchRunRequest(run_id=run_id, after_seq=seen[-1] if seen else 0),
            timeout=STREAM_TIMEOUT,
        )
        keep = cuts.randint(1, 6)  # messages read before the client hangs up
        try:
            for count, message in enumerate(stream, start=1):
                seen.extend(event.seq for event in message.events)
                if count >= keep:
                    stream.cancel()
                    break
            else:
                ended = True  # the stream ended by itself: after the run's final event
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.CANCELLED, exc
    sender.join(STREAM_TIMEOUT)

    events = history(here.stub, run_id)
    assert len(events) >= 2 * WAITS
    assert seen == [event.seq for event in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "RUN_COMPLETED"
