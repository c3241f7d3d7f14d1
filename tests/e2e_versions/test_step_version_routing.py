"""Acceptance: a task that asks for version 2 of a step type runs only on a worker that
implements version 2.

A worker of version 1 is connected, live and busy with other work, yet never handed the
task, which waits and says for what; a worker of version 2 that connects later runs it at
once.
"""

from __future__ import annotations

import time
from pathlib import Path

from surefoot.v1 import definition_pb2, run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    Stub,
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import task_node

SUPPORT = Path(__file__).resolve().parents[1] / "support"
ROUTED_V1 = SUPPORT / "routed_steps_v1.py"
ROUTED_V2 = SUPPORT / "routed_steps_v2.py"
# From the moment the version 2 worker is connected; a task it can run is handed out when
# its stream opens, not at the next poll.
PROMPTLY = 10.0


def routed(name: str, step_version: str) -> definition_pb2.WorkflowDefinition:
    node = task_node("route", None, "input", step_type="e2e-routed")
    node["task"]["step_version"] = step_version
    return definition_from_dict({"name": name, "version": "1", "nodes": [node]})


def waiting_for_a_worker(stub: Stub, run_id: str) -> run_pb2.Run:
    """The run once its task is ready and nobody took it: what GetRun says it waits for."""

    def waiting() -> run_pb2.Run | None:
        run = get_run(stub, run_id)
        (step,) = run.steps
        ready = step.status == run_pb2.STEP_STATUS_SCHEDULED and "a worker" in run.waiting_for
        return run if ready else None

    run = assert_eventually(waiting, message=f"run {run_id} waits for a worker")
    assert run is not None
    return run


def test_task_runs_only_on_a_worker_of_the_step_version_it_asks_for(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, routed("wants-v2", "2"))
    register(stub, routed("wants-v1", "1"))
    v1_worker = worker(ROUTED_V1)

    wants_v2 = start_run(stub, "wants-v2", {"order": "A-2"})
    run = waiting_for_a_worker(stub, wants_v2)
    # It names the version, for an operator who sees a worker of e2e-routed connected.
    assert "a worker that implements e2e-routed@2" in run.waiting_for, run.waiting_for
    assert status_name(run.status) == "RUNNING"

    # The version 1 worker is live and being handed work: a run started after the first one
    # is handed to it and completes, while the first one still waits.
    wants_v1 = start_run(stub, "wants-v1", {"order": "A-1"})
    done = wait_for_status(stub, wants_v1, "COMPLETED")
    assert payload_value(done.output) == {"served_by_version": "1", "asked_for": "1"}
    assert [e.pid for e in execution_log.started(wants_v1)] == [v1_worker.pid]
    assert execution_log.started(wants_v2) == []
    run = get_run(stub, wants_v2)
    (step,) = run.steps
    assert (step.status, step.attempt, list(step.attempts)) == (
        run_pb2.STEP_STATUS_SCHEDULED,
        1,
        [],
    ), step
    assert events_of(history(stub, wants_v2), "ATTEMPT_STARTED") == []

    v2_worker = worker(ROUTED_V2)
    connected_at = time.monotonic()
    done = wait_for_status(stub, wants_v2, "COMPLETED", timeout=PROMPTLY)
    print(f"\nhanded to the version 2 worker {time.monotonic() - connected_at:.2f} s after it")

    assert payload_value(done.output) == {"served_by_version": "2", "asked_for": "2"}
    assert [(e.pid, e.attempt) for e in execution_log.started(wants_v2)] == [(v2_worker.pid, 1)]
    events = history(stub, wants_v2)
    assert [e.data["worker_id"] for e in events_of(events, "ATTEMPT_STARTED")] == [
        v2_worker.worker_id
    ]
    assert events_of(events, "ATTEMPT_FAILED") == events_of(events, "ATTEMPT_LOST") == []
    # The version 1 worker was never even sent the task (it would have refused it).
    assert "does not declare" not in v1_worker.process.stderr()
    assert v1_worker.process.running
