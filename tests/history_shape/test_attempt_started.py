"""ATTEMPT_STARTED is written when an attempt starts (its task leased), not when it ends: a
running attempt is in history, one cancelled mid-way keeps it and stays in `Step.attempts`,
and history times never go backwards in seq order."""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.history_shape.test_event_data_shapes import documented
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import (
    Event,
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import QUICK_RETRY

WORKFLOW = "two-held-steps"


def definition() -> object:
    """first → second, each on the `held` step type."""

    def node(node_id: str, next_node: str | None) -> dict[str, object]:
        spec: dict[str, object] = {
            "id": node_id,
            "task": {
                "step_type": "held",
                "step_version": "1",
                "input": "input",
                "idempotency": "key",
                "retry": QUICK_RETRY,
            },
        }
        if next_node:
            spec["next"] = next_node
        return spec

    return definition_from_dict(
        {"name": WORKFLOW, "version": "1", "nodes": [node("first", "second"), node("second", None)]}
    )


def assert_documented(events: list[Event]) -> None:
    """Each event's data has the keys run.proto documents for its type."""
    shapes = documented()
    for event in events:
        required, optional = shapes[event.type]
        keys = set(event.data)
        assert required <= keys <= required | optional, (event.type, sorted(keys))


def test_an_attempt_is_in_history_from_its_lease_and_a_cancelled_one_stays(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    register(stub, definition())  # type: ignore[arg-type]
    worker = RawWorkerStream(control_plane.channel, "held", [declaration("held")], credit=2)
    worker.next_of("welcome")
    run_id = start_run(stub, WORKFLOW, {"n": 1})

    # Leased (path: handed out in the transaction that scheduled it), not yet reported.
    first = worker.next_task()
    [started] = assert_eventually(
        lambda: events_of(history(stub, run_id), "ATTEMPT_STARTED", "first") or None,
        message="ATTEMPT_STARTED while the attempt runs",
    )
    assert (started.attempt, started.principal) == (1, "held")
    assert started.data == {"worker_id": "held", "task_id": first.task_id}
    worker.complete(first.task_id, first.attempt, {"done": "first"})

    # The next step's attempt starts, then the run is cancelled while it runs.
    second = worker.next_task()
    assert_eventually(
        lambda: events_of(history(stub, run_id), "ATTEMPT_STARTED", "second") or None,
        message="the second attempt is in history while it runs",
    )
    running = {s.node_id: s for s in get_run(stub, run_id).steps}["second"]
    assert [a.outcome for a in running.attempts] == [run_pb2.ATTEMPT_OUTCOME_RUNNING]
    stub.CancelRun(ws.CancelRunRequest(run_id=run_id, reason="changed my mind"), timeout=30)
    worker.next_of("cancel")
    wait_for_status(stub, run_id, "CANCELLED")

    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert_documented(events)
    [kept] = events_of(events, "ATTEMPT_STARTED", "second")
    assert kept.data["task_id"] == second.task_id
    cancelled = {s.node_id: s for s in get_run(stub, run_id).steps}["second"]
    [attempt] = cancelled.attempts
    assert attempt.outcome == run_pb2.ATTEMPT_OUTCOME_CANCELLED
    assert attempt.worker_id == "held"
    assert attempt.started_at.ToDatetime() <= attempt.ended_at.ToDatetime()
    # Every attempt's start comes before its outcome, and no time goes backwards.
    times = [e.time for e in events]
    assert times == sorted(times), [(e.seq, e.type, e.time) for e in events]
    types = [e.type for e in events if e.node_id == "first" and e.type.startswith("ATTEMPT")]
    assert types == ["ATTEMPT_STARTED", "ATTEMPT_COMPLETED"]
    worker.close()


def test_a_task_claimed_from_the_table_records_its_start_in_seq_and_chain_order(
    control_plane: ControlPlane,
) -> None:
    """No worker when the run starts: the task waits in the table, and the claim that leases
    it later numbers its ATTEMPT_STARTED after the run's events (and the run goes on)."""
    stub = control_plane.stub
    register(stub, definition())  # type: ignore[arg-type]
    run_ids = [start_run(stub, WORKFLOW, {"n": n}) for n in range(3)]
    worker = RawWorkerStream(control_plane.channel, "late", [declaration("held")], credit=3)
    worker.next_of("welcome")
    # Three runs of two steps: six attempts, each completed as it comes.
    done = 0
    while done < 6:
        for task in worker.next_of("tasks").tasks.tasks:
            worker.complete(task.task_id, task.attempt, {"done": task.node_id})
            done += 1
    for run_id in run_ids:
        wait_for_status(stub, run_id, "COMPLETED")
        events = history(stub, run_id)
        assert_history_well_formed(events)
        assert_documented(events)
        kinds = [(e.node_id, e.type) for e in events if e.type.startswith("ATTEMPT")]
        assert kinds == [
            ("first", "ATTEMPT_STARTED"),
            ("first", "ATTEMPT_COMPLETED"),
            ("second", "ATTEMPT_STARTED"),
            ("second", "ATTEMPT_COMPLETED"),
        ]
        times = [e.time for e in events]
        assert times == sorted(times)
    worker.close()


def test_a_watched_run_shows_its_attempt_start_when_the_task_is_claimed(
    control_plane: ControlPlane,
) -> None:
    """The run waits for a worker while a WatchRun stream follows it; the worker's claim is
    the run's only change, and the stream shows the attempt start (no result ever comes)."""
    stub = control_plane.stub
    register(stub, definition())  # type: ignore[arg-type]
    run_id = start_run(stub, WORKFLOW, {"n": 1})
    stream = stub.WatchRun(ws.WatchRunRequest(run_id=run_id), timeout=60)
    seen: list[str] = []
    worker: RawWorkerStream | None = None
    try:
        for message in stream:
            seen.extend(run_pb2.EventType.Name(e.type) for e in message.events)
            if worker is None and "EVENT_TYPE_STEP_SCHEDULED" in seen:
                worker = RawWorkerStream(
                    control_plane.channel, "watched", [declaration("held")], credit=1
                )
                worker.next_task()
            if "EVENT_TYPE_ATTEMPT_STARTED" in seen:
                break
    finally:
        stream.cancel()
        if worker is not None:
            worker.close()
    assert seen[-1] == "EVENT_TYPE_ATTEMPT_STARTED", seen
