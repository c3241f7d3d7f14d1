"""Acceptance: a 3-step workflow runs to completion through a worker in its own process."""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    json_payload,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import three_steps


def test_three_steps_complete_through_a_worker_process(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    assert register(stub, three_steps("sequential")).created
    steps_worker = worker()

    run_id = start_run(stub, "sequential", {"trail": ["input"]})
    run = wait_for_status(stub, run_id, "COMPLETED")

    # Each step's input was built from the previous step's output, and the run's output is
    # the last step's.
    assert payload_value(run.output) == {"trail": ["input", "a", "b", "c"], "attempt": 1}
    events = history(stub, run_id)
    assert_history_well_formed(events)
    inputs = {e.node_id: e.data["input"] for e in events_of(events, "STEP_SCHEDULED")}
    assert inputs == {
        "a": {"trail": ["input"]},
        "b": {"trail": ["input", "a"]},
        "c": {"trail": ["input", "a", "b"]},
    }
    completed = events_of(events, "ATTEMPT_COMPLETED")
    assert [(e.node_id, e.attempt) for e in completed] == [("a", 1), ("b", 1), ("c", 1)]
    assert completed[1].data["output"] == {"trail": ["input", "a", "b"], "attempt": 1}
    assert [e.type for e in events][-1] == "RUN_COMPLETED"
    started = events_of(events, "ATTEMPT_STARTED")
    assert {e.data["worker_id"] for e in started} == {steps_worker.worker_id}

    # The steps ran in the worker process, once each, in order; b on the sync handler.
    executions = execution_log.started(run_id)
    assert [(e.node_id, e.step_type, e.pid) for e in executions] == [
        ("a", "e2e-work", steps_worker.pid),
        ("b", "e2e-work-sync", steps_worker.pid),
        ("c", "e2e-work", steps_worker.pid),
    ]
    keys = {e.node_id: e.idempotency_key for e in executions}
    scheduled_keys = {
        e.node_id: e.data["idempotency_key"] for e in events_of(events, "STEP_SCHEDULED")
    }
    assert keys == scheduled_keys
    assert len(set(keys.values())) == 3


def test_run_started_before_any_worker_connected_completes_once_one_does(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    """The README's tour order: register, start a run, then start the worker.

    StartRun must answer promptly even though no worker has declared the step types yet.
    """
    stub = control_plane.stub
    register(stub, three_steps("worker-comes-later"))
    request = ws.StartRunRequest(
        workflow_name="worker-comes-later", input=json_payload({"trail": []})
    )
    run_id = stub.StartRun(request, timeout=10).run_id
    assert get_run(stub, run_id).status == run_pb2.RUN_STATUS_RUNNING

    worker()
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output)["trail"] == ["a", "b", "c"]
    assert [e.node_id for e in execution_log.started(run_id)] == ["a", "b", "c"]
