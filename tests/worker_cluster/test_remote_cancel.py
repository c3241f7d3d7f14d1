"""An attempt taken back by one control plane while the worker holding it is connected to the
other (its lease ran out, its `timeout_seconds` passed, its run was cancelled there): the Cancel
reaches that worker, with the reason, through the control plane it is connected to."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import events_of, history, register, start_run
from tests.support.workflows import QUICK_RETRY

pytestmark = pytest.mark.postgres

WORKFLOW = "held-elsewhere"


def held_on(
    planes: list[ControlPlane], **task: Any
) -> tuple[ControlPlane, ControlPlane, RawWorkerStream, str, str]:
    """A run started through the second plane whose one task a worker connected to the first
    holds: (here, there, worker, run id, task id)."""
    here, there = planes
    node = {
        "step_type": "held",
        "step_version": "1",
        "input": "input",
        "idempotency": "key",
        "retry": QUICK_RETRY,
        **task,
    }
    register(
        there.stub,
        definition_from_dict(
            {"name": WORKFLOW, "version": "1", "nodes": [{"id": "work", "task": node}]}
        ),
    )
    worker = RawWorkerStream(here.channel, "held-here", [declaration("held")], credit=1)
    worker.next_of("welcome")
    run_id = start_run(there.stub, WORKFLOW, {})
    task_ = worker.next_task()
    assert task_.attempt == 1
    return here, there, worker, run_id, task_.task_id


@contextmanager
def standing_still(plane: ControlPlane) -> Iterator[None]:
    """The plane stops (as under a long pause): only the other one can take its leases back.
    The worker connected to it is alive throughout."""
    assert plane.process is not None
    plane.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        plane.process.send_signal(signal.SIGCONT)


def attempt_lost(there: ControlPlane, run_id: str) -> None:
    assert_eventually(
        lambda: events_of(history(there.stub, run_id), "ATTEMPT_LOST", "work"),
        30.0,
        message="the other control plane took the attempt back",
    )


def test_a_lease_taken_back_by_the_other_plane_cancels_the_worker_where_it_is_connected(
    planes: list[ControlPlane],
) -> None:
    here, there, worker, run_id, task_id = held_on(planes)
    with standing_still(here):
        attempt_lost(there, run_id)

    cancel = worker.next_of("cancel").cancel
    assert cancel.task_id == task_id
    assert "lease" in cancel.reason, cancel.reason
    worker.close()


def test_an_attempt_timed_out_by_the_other_plane_is_cancelled_with_the_timeout_as_reason(
    planes: list[ControlPlane],
) -> None:
    # The timeout (1 s) runs out before the lease (2 s): the reaper names the timeout.
    here, there, worker, run_id, task_id = held_on(planes, timeout_seconds=1)
    with standing_still(here):
        attempt_lost(there, run_id)
    [lost] = events_of(history(there.stub, run_id), "ATTEMPT_LOST", "work")[:1]
    assert lost.data["reason"] == "timed out: no result within 1 s"

    cancel = worker.next_of("cancel").cancel
    assert cancel.task_id == task_id
    assert cancel.reason == "timed out: no result within 1 s"
    worker.close()


def test_a_run_cancelled_through_the_other_plane_cancels_its_running_attempt(
    planes: list[ControlPlane],
) -> None:
    # Both planes run: the cancel is written by the one the client called, not the worker's.
    _, there, worker, run_id, task_id = held_on(planes)
    there.stub.CancelRun(ws.CancelRunRequest(run_id=run_id, reason="wrong payee"), timeout=30)

    cancel = worker.next_of("cancel").cancel
    assert cancel.task_id == task_id
    assert cancel.reason == "run cancelled: wrong payee"
    worker.close()
