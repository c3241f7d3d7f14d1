"""WatchRuns on a real control plane (SQLite and PostgreSQL): the matching runs now, then each
run's change as its transaction commits, runs entering and leaving the filter, the total,
the counts by status when asked.

The control plane runs in the test process so that a test can switch off every re-read on
a clock: the changes then come from the committer's hand-over alone, as they commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.dispatch import run_list_watches, run_notices
from tests.api.watch_support import GATES, GatedRun, start_gated_run, two_gates
from tests.auth.auth_support import row_counts
from tests.connectors.outcome_plane import InProcessControlPlane, control_plane_on
from tests.live_runs.live_support import (
    COMPLETED,
    WAITING,
    Stub,
    counts_of,
    gated_runs,
    ids,
    watch_runs,
)
from tests.support.eventually import assert_eventually
from tests.support.runs import json_payload, wait_for_status
from tests.support.waits import field_violations


@pytest.fixture
def plane(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessControlPlane]:
    """A control plane in this process with no re-read on a clock (an hour apart)."""
    monkeypatch.setattr(run_notices, "POLL_SECONDS", 3600.0)
    monkeypatch.setattr(run_notices, "SAFETY_SECONDS", 3600.0)
    with control_plane_on(database_url) as started:
        yield started


def test_the_first_message_is_the_newest_matching_runs_with_the_total(
    plane: InProcessControlPlane,
) -> None:
    runs = gated_runs(plane.stub, 3)
    stream = watch_runs(plane.stub, initial_limit=2, workflow_name=GATES)
    first = stream.first()
    stream.cancel()

    assert first.initial and first.total == 3
    newest = [run.run_id for run in reversed(runs)][:2]
    assert ids(c.run for c in first.changes) == newest
    assert not any(c.left_filter for c in first.changes)
    shown = first.changes[0].run
    assert shown.status == WAITING and shown.current_node == "first"
    assert shown.waiting_for and shown.workflow_name == GATES
    # A summary: neither input nor output nor steps.
    assert not shown.HasField("input") and not shown.HasField("output") and not shown.steps


def test_a_run_started_and_completed_after_the_watch_began_arrives_as_it_commits(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    (earlier,) = gated_runs(stub, 1)
    stream = watch_runs(stub, workflow_name=GATES)
    assert stream.first().total == 1

    later = start_gated_run(stub)
    started = stream.wait_for(later.run_id, WAITING)
    assert started.current_node == "first" and stream.total() == 2

    later.release(stub, "first")
    moved = assert_eventually(
        lambda: (
            [c.run for c in stream.changes() if c.run.id == later.run_id and c.run.current_node][
                -1
            ].current_node
            == "second"
        )
    )
    assert moved
    later.release(stub, "second")
    done = stream.wait_for(later.run_id, COMPLETED)
    stream.cancel()

    assert done.HasField("closed_at") and not done.HasField("output")
    assert stream.total() == 2
    assert set(stream.table()) == {earlier.run_id, later.run_id}
    assert earlier.run_id not in {c.run.id for c in stream.changes()}


def test_a_run_whose_status_leaves_the_filter_is_told_so_and_the_total_drops(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    leaving, staying = gated_runs(stub, 2)
    stream = watch_runs(stub, workflow_name=GATES, statuses=[WAITING])
    assert stream.first().total == 2

    leaving.release(stub, "first")
    leaving.release(stub, "second")
    wait_for_status(stub, leaving.run_id, "COMPLETED")

    def left() -> ws.RunChange | None:
        found = [c for c in stream.changes() if c.run.id == leaving.run_id and c.left_filter]
        return found[-1] if found else None

    change = assert_eventually(left, message="the change that says the run left")
    stream.cancel()
    assert change.run.status == COMPLETED
    assert stream.received()[-1].total == 1
    assert set(stream.table()) == {staying.run_id}


def test_runs_that_never_match_send_nothing(plane: InProcessControlPlane) -> None:
    stub = plane.stub
    (watched,) = gated_runs(stub, 1)
    stream = watch_runs(stub, statuses=[run_pb2.RUN_STATUS_COMPLETED])
    assert stream.first().total == 0

    other = start_gated_run(stub)  # WAITING: not selected
    watched.release(stub, "first")
    watched.release(stub, "second")
    stream.wait_for(watched.run_id, COMPLETED)
    stream.cancel()

    assert ids(c.run for c in stream.changes()) == [watched.run_id]
    assert other.run_id not in stream.table()
    assert stream.total() == 1


def test_a_prefix_and_a_time_range_select_which_runs_are_watched(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    (run,) = gated_runs(stub, 1)
    created = stub.GetRun(ws.GetRunRequest(run_id=run.run_id)).run.created_at
    stream = watch_runs(stub, run_id_prefix=run.run_id[:8], created_after=created)
    first = stream.first()
    later = start_gated_run(stub)
    run.release(stub, "first")
    stream.wait_for(run.run_id, WAITING)
    assert_eventually(
        lambda: (
            [c.run.current_node for c in stream.changes() if c.run.id == run.run_id][-1] == "second"
        )
    )
    stream.cancel()

    assert ids(c.run for c in first.changes) == [run.run_id]
    # Started after the watch began, but of another prefix (or one in 2^32).
    if not later.run_id.startswith(run.run_id[:8]):
        assert later.run_id not in {c.run.id for c in stream.changes()}


def test_counts_by_status_come_with_the_first_message_and_follow_each_change(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    finishing, _ = gated_runs(stub, 2)
    plain = watch_runs(stub, workflow_name=GATES)
    stream = watch_runs(stub, workflow_name=GATES, count_by_status=True)
    first = stream.first()
    assert first.total == 2 and counts_of(first) == {"WAITING": 2}
    every = {c.status for c in first.counts_by_status}
    assert every == set(run_pb2.RunStatus.values()) - {run_pb2.RUN_STATUS_UNSPECIFIED}
    assert not plain.first().counts_by_status, "counted only when asked"
    plain.cancel()

    finishing.release(stub, "first")
    finishing.release(stub, "second")
    assert_eventually(lambda: stream.counts() == {"WAITING": 1, "COMPLETED": 1})
    start_gated_run(stub)
    assert_eventually(lambda: stream.counts() == {"WAITING": 2, "COMPLETED": 1})
    stream.cancel()
    assert stream.total() == 3


def test_a_status_filter_s_runs_do_not_wait_for_the_counts_which_follow_every_run(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    finishing, _ = gated_runs(stub, 2)
    stream = watch_runs(stub, workflow_name=GATES, statuses=[COMPLETED], count_by_status=True)
    first = stream.first()
    assert first.total == 0 and not first.changes and not first.counts_by_status
    # Then the counts alone: those of the runs the filter's other fields select.
    assert_eventually(lambda: stream.counts() == {"WAITING": 2}, message="the counts")
    counted = stream.received()[1]
    assert not counted.initial and not counted.changes and counted.total == 0

    finishing.release(stub, "first")
    finishing.release(stub, "second")
    stream.wait_for(finishing.run_id, COMPLETED)
    assert_eventually(lambda: stream.counts() == {"WAITING": 1, "COMPLETED": 1})
    # A run the filter does not show still moves the counts.
    start_gated_run(stub)
    assert_eventually(lambda: stream.counts() == {"WAITING": 2, "COMPLETED": 1})
    stream.cancel()
    assert set(stream.table()) == {finishing.run_id} and stream.total() == 1


@pytest.mark.parametrize(
    ("filters", "limit", "field"),
    [
        ({"statuses": [run_pb2.RUN_STATUS_UNSPECIFIED]}, 0, "filter.statuses[0]"),
        ({"statuses": [WAITING, 99]}, 0, "filter.statuses[1]"),
        ({"run_id_prefix": "abc"}, 0, "filter.run_id_prefix"),
        ({"run_id_prefix": "ABCD"}, 0, "filter.run_id_prefix"),
        ({"run_id_prefix": "abcd%"}, 0, "filter.run_id_prefix"),
        ({}, 1001, "initial_limit"),
        ({}, -1, "initial_limit"),
        ({"workflow_name": "w" * 201}, 0, "filter.workflow_name"),
    ],
)
def test_bad_filters_are_refused_naming_the_field_and_write_nothing(
    plane: InProcessControlPlane, filters: dict[str, Any], limit: int, field: str
) -> None:
    before = row_counts(plane.database_url)
    stream = watch_runs(plane.stub, initial_limit=limit, **filters)
    error = assert_eventually(lambda: stream.error, message="the refusal")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert [name for name, _ in field_violations(error)] == [field]
    assert stream.received() == []
    assert row_counts(plane.database_url) == before


def test_a_time_range_that_ends_before_it_starts_is_refused(plane: InProcessControlPlane) -> None:
    later = ws.RunFilter().created_after
    later.FromSeconds(2_000_000_000)
    earlier = ws.RunFilter().created_before
    earlier.FromSeconds(1_000_000_000)
    stream = watch_runs(plane.stub, created_after=later, created_before=earlier)
    error = assert_eventually(lambda: stream.error, message="the refusal")

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in field_violations(error)] == ["filter.created_before"]


def test_a_closed_stream_leaves_no_subscription(plane: InProcessControlPlane) -> None:
    lists = plane._plane._committer.watches.lists  # type: ignore[union-attr]
    stream = watch_runs(plane.stub)
    stream.first()
    assert lists.namespaces() == {"default"}
    stream.cancel()
    assert_eventually(lambda: lists.namespaces() == set(), message="the stream unsubscribed")


def test_a_stream_that_falls_behind_is_resynced_with_a_new_first_message(
    plane: InProcessControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream may hold one run's change: one commit that changes two runs overflows it.
    monkeypatch.setattr(run_list_watches, "MAX_PENDING", 1)
    stub = plane.stub
    key = uuid.uuid4().hex
    pair = [start_gated_run_with_key(stub, key) for _ in range(2)]
    stream = watch_runs(stub, workflow_name=GATES)
    assert stream.first().total == 2

    GatedRun(pair[0], key).release(stub, "first")  # both runs wait for it: one transaction

    def resynced() -> ws.WatchRunsResponse | None:
        # (On PostgreSQL the re-read when the LISTEN connection comes up may resync it
        # earlier too: it finds both new runs at once.)
        found = [
            m
            for m in stream.received()[1:]
            if m.initial and {c.run.current_node for c in m.changes} == {"second"}
        ]
        return found[0] if found else None

    resync = assert_eventually(resynced, message="a first message again, after the change")
    stream.cancel()

    assert resync.total == 2
    assert {c.run.id for c in resync.changes} == set(pair)


def start_gated_run_with_key(stub: Stub, key: str) -> str:
    stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=two_gates()), timeout=30)
    request = ws.StartRunRequest(workflow_name=GATES, input=json_payload({"key": key}))
    return str(stub.StartRun(request, timeout=30).run_id)
