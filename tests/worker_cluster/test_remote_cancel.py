"""A lease taken back by one control plane while the worker holding it is connected to the
other: the Cancel reaches that worker through the control plane it is connected to."""

from __future__ import annotations

import signal

import pytest
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import events_of, history, register, start_run
from tests.support.workflows import QUICK_RETRY

pytestmark = pytest.mark.postgres

WORKFLOW = "held-elsewhere"


def test_a_lease_taken_back_by_the_other_plane_cancels_the_worker_where_it_is_connected(
    planes: list[ControlPlane],
) -> None:
    here, there = planes
    register(
        there.stub,
        definition_from_dict(
            {
                "name": WORKFLOW,
                "version": "1",
                "nodes": [
                    {
                        "id": "work",
                        "task": {
                            "step_type": "held",
                            "step_version": "1",
                            "input": "input",
                            "idempotency": "key",
                            "retry": QUICK_RETRY,
                        },
                    }
                ],
            }
        ),
    )
    worker = RawWorkerStream(here.channel, "held-here", [declaration("held")], credit=1)
    worker.next_of("welcome")
    run_id = start_run(there.stub, WORKFLOW, {})
    task = worker.next_task()
    assert task.attempt == 1

    # The worker's control plane stands still (as under a long pause), so only the other
    # one can take the lease back when it runs out; the worker itself is alive throughout.
    assert here.process is not None
    here.process.send_signal(signal.SIGSTOP)
    try:
        assert_eventually(
            lambda: events_of(history(there.stub, run_id), "ATTEMPT_LOST", "work"),
            30.0,
            message="the other control plane took the lease back",
        )
    finally:
        here.process.send_signal(signal.SIGCONT)

    cancel = worker.next_of("cancel").cancel
    assert cancel.task_id == task.task_id
    assert "lease" in cancel.reason, cancel.reason
    worker.close()
