"""A task's `timeout_seconds` bounds each attempt on the server too: a handler that hangs
while its worker keeps heartbeating is taken back when the time is up, told to stop, and the
step runs again (or goes to a person when it is `idempotency: none`)."""

from __future__ import annotations

from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)


def bounded(name: str, idempotency: str) -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "call",
                    "task": {
                        "step_type": "e2e-work",
                        "step_version": "1",
                        "input": "input",
                        "idempotency": idempotency,
                        "timeout_seconds": 1,
                    },
                }
            ],
        }
    )


def test_an_attempt_past_its_timeout_is_taken_back_although_it_heartbeats(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, bounded("bounded", "key"))
    register(stub, bounded("bounded-unsafe", "none"))
    worker()
    # Attempt 1 would heartbeat for 60 s; attempt 2 returns at once.
    hangs_once = {"trail": [], "sleep_seconds": 60, "sleep_attempts": 1}
    run_id = start_run(stub, "bounded", hangs_once)
    unsafe = start_run(stub, "bounded-unsafe", {"trail": [], "sleep_seconds": 60})

    done = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(done.output)["attempt"] == 2
    [taken_back] = events_of(history(stub, run_id), "ATTEMPT_LOST", "call")
    assert taken_back.attempt == 1
    assert taken_back.data["reason"] == "timed out: no result within 1 s"
    assert [e.attempt for e in execution_log.started(run_id, "call")] == [1, 2]

    # The same for a step that may have acted: a person decides, nothing runs it again.
    wait_for_status(stub, unsafe, "NEEDS_ATTENTION")
    [dead] = events_of(history(stub, unsafe), "STEP_DEAD_LETTERED", "call")
    assert "timed out" in dead.data["error"]["message"]
    assert [e.attempt for e in execution_log.started(unsafe, "call")] == [1]
