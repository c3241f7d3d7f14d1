"""A task reaches a connected worker when it is scheduled, not at the next poll.

Each control plane here polls for ready tasks once a minute only (`--poll-interval 60`),
while every wait below gives up after 30 s: a task that reached the worker did so through
the hand-out itself (in the commit that scheduled it, on a Credit, on a freed slot, when
its retry came due, when the wait before it ended), never through the safety-net poll.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, WORKER, AuthControlPlane, write_auth_file
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import events_of, history, register, start_run, wait_for_status
from tests.support.waits import decide, send_event
from tests.support.workflows import single_step, task_node, three_steps

POLL_SECONDS = 60.0
# Within the safety net's interval by a wide margin: waiting this long proves no poll came.
WAIT = 30.0


@pytest.fixture
def server(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    control_plane = ControlPlane(processes, database_url, poll_interval=POLL_SECONDS)
    control_plane.start()
    yield control_plane
    control_plane.stop()


@pytest.fixture
def auth_server(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """The same, with credentials: deciding an approval needs an authenticated caller."""
    auth_file = write_auth_file(tmp_path / "auth.yaml")
    poll = ("--poll-interval", str(POLL_SECONDS))
    control_plane = AuthControlPlane(processes, database_url, auth_file, extra_args=poll)
    control_plane.start()
    yield control_plane
    control_plane.stop()


def _worker(server: ControlPlane, name: str, credit: int, token: str = "") -> RawWorkerStream:
    steps = [declaration("e2e-work"), declaration("e2e-work-sync")]
    stream = RawWorkerStream(server.channel, name, steps, credit, token=token)
    stream.next_of("welcome")
    return stream


def _complete(stream: RawWorkerStream) -> wpb.Task:
    task = stream.next_task(WAIT)
    stream.complete(task.task_id, task.attempt, {"trail": []})
    return task


def test_each_next_step_is_leased_in_the_commit_that_scheduled_it(server: ControlPlane) -> None:
    register(server.stub, three_steps("handout"))
    stream = _worker(server, "w1", credit=1)
    run_id = start_run(server.stub, "handout", {"trail": []})

    assert [_complete(stream).node_id for _ in range(3)] == ["a", "b", "c"]
    wait_for_status(server.stub, run_id, "COMPLETED", timeout=WAIT)

    events = history(server.stub, run_id)
    for node_id in ("a", "b", "c"):
        (scheduled,) = events_of(events, "STEP_SCHEDULED", node_id)
        (started,) = events_of(events, "ATTEMPT_STARTED", node_id)
        # The lease is taken in the transaction that schedules the step, at its time.
        assert started.time == scheduled.time, (node_id, scheduled, started)
    for previous, node_id in (("a", "b"), ("b", "c")):
        (completed,) = events_of(events, "ATTEMPT_COMPLETED", previous)
        (scheduled,) = events_of(events, "STEP_SCHEDULED", node_id)
        # ...which is the transaction that recorded the result of the step before it.
        assert scheduled.time == completed.time and scheduled.seq == completed.seq + 1


def test_a_credit_or_a_freed_slot_hands_out_waiting_tasks_at_once(server: ControlPlane) -> None:
    register(server.stub, three_steps("handout"))
    stream = _worker(server, "w1", credit=0)
    run_ids = [start_run(server.stub, "handout", {"trail": []}) for _ in range(2)]
    # Two runs' first tasks wait in the database: no stream has a free slot.
    stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=1)))
    # One slot: six tasks in a row, each leased when the result before it freed the slot.
    done = [_complete(stream) for _ in range(6)]
    assert sorted((t.run_id, t.node_id) for t in done) == sorted(
        (run_id, node) for run_id in run_ids for node in "abc"
    )
    for run_id in run_ids:
        wait_for_status(server.stub, run_id, "COMPLETED", timeout=WAIT)


def test_a_retry_is_handed_out_when_its_backoff_ends(server: ControlPlane) -> None:
    retry = {"max_attempts": 3, "initial_interval_seconds": 0.5, "backoff_coefficient": 1}
    register(server.stub, single_step("retried", retry))
    stream = _worker(server, "w1", credit=1)
    run_id = start_run(server.stub, "retried", {"trail": []})

    first = stream.next_task(WAIT)
    fail = wpb.Fail(
        task_id=first.task_id, attempt=first.attempt, error_type="Flaky", retryable=True
    )
    stream.send(wpb.WorkerMessage(fail=fail))
    second = stream.next_task(WAIT)
    assert (second.node_id, second.attempt) == ("step", first.attempt + 1)
    stream.complete(second.task_id, second.attempt, {"trail": []})
    _complete(stream)
    wait_for_status(server.stub, run_id, "COMPLETED", timeout=WAIT)

    events = history(server.stub, run_id)
    (retry_scheduled,) = events_of(events, "RETRY_SCHEDULED", "step")
    started = [e for e in events_of(events, "ATTEMPT_STARTED", "step") if e.attempt == 2]
    assert started and started[0].time >= retry_scheduled.data["due_at"] - 1e-3


WAITS: dict[str, dict[str, Any]] = {
    "approval": {"approval": {"title": "go on?", "approvers": []}},
    "sleep": {"sleep": {"seconds": 0.5}},
    "wait_event": {"wait_event": {"event_name": "go", "correlation_key": "input.key"}},
}


@pytest.mark.parametrize("kind", sorted(WAITS))
def test_the_step_after_a_wait_is_handed_out_when_the_wait_ends(
    auth_server: AuthControlPlane, kind: str
) -> None:
    server = auth_server
    name = f"after-{kind.replace('_', '-')}"
    gate = {"id": "gate", "next": "a", **WAITS[kind]}
    work = task_node("a", None, "{trail: `[]`}")
    register(
        server.stub, definition_from_dict({"name": name, "version": "1", "nodes": [gate, work]})
    )
    stream = _worker(server, "w1", credit=1, token=WORKER)
    run_id = start_run(server.stub, name, {"key": "k1"})

    if kind == "approval":
        decide(server.stub, f"{run_id}:gate", approve=True, token=ALICE)
    elif kind == "wait_event":
        send_event(server.stub, "go", "k1", {})
    # The decision, the event or the fired timer commits the task and its lease together.
    assert _complete(stream).node_id == "a"
    wait_for_status(server.stub, run_id, "COMPLETED", timeout=WAIT)
    events = history(server.stub, run_id)
    (scheduled,) = events_of(events, "STEP_SCHEDULED", "a")
    (started,) = events_of(events, "ATTEMPT_STARTED", "a")
    assert started.time == scheduled.time
