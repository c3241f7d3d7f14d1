"""WatchRun on a real control plane: every event once, in seq order, as it commits; the end.

The control plane runs in the test process (tests/connectors/outcome_plane.py) so that a test
can lengthen the stream's re-read interval: a stream that still gets every event then got
them from the committer's wake-ups, not from reading again on a clock. Steps run in real
worker processes; the approval workflow of watch_support.py lets a test commit each change
of a run itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.api import run_watch
from tests.api.watch_support import (
    events_of,
    history,
    read_until,
    start_gated_run,
    type_name,
    watch,
)
from tests.connectors.outcome_plane import InProcessControlPlane, control_plane_on
from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry, start_worker
from tests.support.runs import register, start_run, wait_for_status
from tests.support.waits import field_violations
from tests.support.workflows import three_steps

RUNNING = run_pb2.RUN_STATUS_RUNNING
COMPLETED = run_pb2.RUN_STATUS_COMPLETED
CANCELLED = run_pb2.RUN_STATUS_CANCELLED
UNSPECIFIED = run_pb2.RUN_STATUS_UNSPECIFIED


@pytest.fixture
def plane(database_url: str) -> Iterator[InProcessControlPlane]:
    """A control plane in this process on the test's database (SQLite and PostgreSQL)."""
    with control_plane_on(database_url) as started:
        yield started


def watched_runs(plane: InProcessControlPlane) -> set[str]:
    """The runs some stream of `plane` is subscribed to, read from its committer."""
    watches = plane._plane._committer.watches  # type: ignore[union-attr]
    return watches.followed()  # type: ignore[no-any-return]


def ended_gated_run(plane: InProcessControlPlane) -> str:
    run = start_gated_run(plane.stub)
    run.release(plane.stub, "first")
    run.release(plane.stub, "second")
    wait_for_status(plane.stub, run.run_id, "COMPLETED")
    return run.run_id


def test_a_watch_from_before_the_steps_gets_every_event_once_in_order_woken_by_commits(
    plane: InProcessControlPlane, processes: ProcessRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No re-read without a wake for an hour: only the committer's wake-ups can deliver the
    # events of the steps (each a commit of its own) before the stream's deadline.
    monkeypatch.setattr(run_watch, "REREAD_SECONDS", 3600.0)
    stub = plane.stub
    register(stub, three_steps("watch-three"))
    run_id = start_run(stub, "watch-three", {"trail": []})
    stream = watch(stub, run_id)
    first = next(stream)  # once it is here, the stream is subscribed
    assert first.status == RUNNING
    assert [type_name(e) for e in first.events][:1] == ["RUN_STARTED"]

    start_worker(processes, plane.address)
    rest = list(stream)  # ends by itself after the final event

    messages = [first, *rest]
    events = events_of(messages)
    assert events == history(stub, run_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert type_name(events[-1]) == "RUN_COMPLETED"
    assert [type_name(e) for e in events].count("ATTEMPT_COMPLETED") == 3
    assert messages[-1].status == COMPLETED
    assert all(m.status != UNSPECIFIED for m in messages)  # no history was long enough to page
    assert all(m.events for m in rest)  # a wake without news sends nothing
    assert_eventually(lambda: run_id not in watched_runs(plane), message="unsubscribed")


def test_a_watch_resumed_after_the_last_seq_seen_misses_nothing_and_repeats_nothing(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    run = start_gated_run(stub)
    run_id = run.run_id
    stream = watch(stub, run_id)
    seen = read_until(stream, "EVENT_WAIT_STARTED", "first")
    assert seen[-1].status == run_pb2.RUN_STATUS_WAITING
    stream.cancel()
    # A client that hangs up leaves nothing behind in the control plane.
    assert_eventually(lambda: run_id not in watched_runs(plane), message="unsubscribed")

    run.release(stub, "first")  # committed while nobody watches
    last = events_of(seen)[-1].seq
    resumed = watch(stub, run_id, after_seq=last)
    caught_up = read_until(resumed, "EVENT_WAIT_STARTED", "second")
    assert events_of(caught_up)[0].seq == last + 1
    run.release(stub, "second")  # committed while watched
    rest = list(resumed)

    events = events_of(seen) + events_of(caught_up + rest)
    assert events == history(stub, run_id)
    assert type_name(events[-1]) == "RUN_COMPLETED" and rest[-1].status == COMPLETED


def test_a_watch_on_an_ended_run_sends_what_follows_after_seq_and_ends(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    run_id = ended_gated_run(plane)
    full = history(stub, run_id)

    whole = list(watch(stub, run_id))
    assert len(whole) == 1 and whole[0].status == COMPLETED
    assert events_of(whole) == full
    tail = list(watch(stub, run_id, after_seq=full[-3].seq))
    assert events_of(tail) == full[-2:] and tail[-1].status == COMPLETED
    for after in (full[-1].seq, full[-1].seq + 10):
        assert list(watch(stub, run_id, after_seq=after)) == [ws.WatchRunResponse(status=COMPLETED)]

    cancelled = start_gated_run(stub).run_id
    stub.CancelRun(ws.CancelRunRequest(run_id=cancelled, reason="not needed"), timeout=30)
    messages = list(watch(stub, cancelled))
    assert events_of(messages) == history(stub, cancelled)
    assert type_name(events_of(messages)[-1]) == "RUN_CANCELLED"
    assert messages[-1].status == CANCELLED


def test_a_long_history_goes_out_in_pages_and_only_the_last_carries_the_status(
    plane: InProcessControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_watch, "PAGE_EVENTS", 2)
    stub = plane.stub
    run_id = ended_gated_run(plane)
    full = history(stub, run_id)
    assert len(full) > 4

    messages = list(watch(stub, run_id))
    assert [len(m.events) for m in messages] == [2] * (len(full) // 2) + (
        [len(full) % 2] if len(full) % 2 else []
    )
    assert events_of(messages) == full
    assert [m.status for m in messages] == [UNSPECIFIED] * (len(messages) - 1) + [COMPLETED]


def test_keep_open_stays_open_after_the_run_ended(plane: InProcessControlPlane) -> None:
    stub = plane.stub
    run_id = ended_gated_run(plane)
    full = history(stub, run_id)

    closing = watch(stub, run_id)
    assert events_of([next(closing)]) == full
    assert list(closing) == []  # the end, at once

    staying = watch(stub, run_id, keep_open=True)
    first = next(staying)
    assert events_of([first]) == full and first.status == COMPLETED
    with pytest.raises(grpc.FutureTimeoutError):
        # Whether a stream that is not ending ends within a few seconds: it does not.
        staying.call.result(timeout=3)  # type: ignore[attr-defined]
    staying.cancel()
    assert_eventually(lambda: run_id not in watched_runs(plane), message="unsubscribed")


def refusal(stream: Iterable[ws.WatchRunResponse]) -> grpc.RpcError:
    try:
        next(iter(stream))
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("the watch was served; it must be refused")


def test_bad_watches_are_refused_precisely(plane: InProcessControlPlane) -> None:
    stub = plane.stub
    run_id = start_gated_run(stub).run_id

    unknown = refusal(watch(stub, "no-such-run"))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert unknown.details() == "run no-such-run not found in namespace 'default'"  # type: ignore[attr-defined]
    elsewhere = refusal(watch(stub, run_id, namespace="team-z"))
    assert elsewhere.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]

    for request, field in (
        ({"run_id": run_id, "after_seq": -1}, "after_seq"),
        ({"run_id": ""}, "run_id"),
        ({"run_id": run_id, "namespace": "Not A Namespace"}, "namespace"),
    ):
        error = refusal(stub.WatchRun(ws.WatchRunRequest(**request), timeout=30))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, request  # type: ignore[attr-defined]
        assert [f for f, _ in field_violations(error)] == [field]
    # Nobody is left subscribed by a refused watch.
    assert_eventually(lambda: not watched_runs(plane), message="no subscriptions left")


@pytest.mark.postgres
def test_a_watch_on_one_control_plane_sees_the_steps_run_on_another(
    processes: ProcessRegistry, tmp_path: Path
) -> None:
    """Nothing wakes this control plane's stream: the once-a-second re-read brings the events
    another control plane on the same database committed."""
    with fresh_database("postgres", tmp_path) as url:
        other = ControlPlane(processes, url)
        other.start()
        try:
            with control_plane_on(url) as plane:
                register(other.stub, three_steps("watch-elsewhere"))
                run_id = start_run(other.stub, "watch-elsewhere", {"trail": []})
                stream = watch(plane.stub, run_id)
                assert next(stream).status == RUNNING
                worker = start_worker(processes, other.address)
                rest = list(stream)
                worker.kill()
                events = [*history(plane.stub, run_id)]
                assert events_of(rest) == events[len(events) - len(events_of(rest)) :]
                assert type_name(events[-1]) == "RUN_COMPLETED" and rest[-1].status == COMPLETED
                assert any(type_name(e) == "ATTEMPT_COMPLETED" for e in events_of(rest))
        finally:
            other.stop()


def test_news_of_this_process_s_commits_go_out_without_a_read(
    plane: InProcessControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    read = run_watch._read

    def counted(*args: object) -> object:
        reads.append(1)
        return read(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(run_watch, "_read", counted)
    monkeypatch.setattr(run_watch, "REREAD_SECONDS", 3600.0)
    stub = plane.stub
    run = start_gated_run(stub)
    stream = watch(stub, run.run_id)
    read_until(stream, "EVENT_WAIT_STARTED", "first")
    run.release(stub, "first")
    run.release(stub, "second")
    rest = list(stream)
    assert type_name(events_of(rest)[-1]) == "RUN_COMPLETED"
    # The stream's first round reads; every later commit's rows came with its wake-up.
    assert len(reads) == 1
