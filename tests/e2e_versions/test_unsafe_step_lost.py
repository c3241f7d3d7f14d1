"""Acceptance: a step declared `idempotency="none"` whose worker dies mid-step goes to a
human, never to another worker.

It may have had its effect, and nothing downstream would notice a second one, so running
it again is not the engine's call: the step is dead-lettered, the run needs attention, the
history says why, and a worker that connects afterwards is handed other work but not it.
"""

from __future__ import annotations

from pathlib import Path

from surefoot.v1 import definition_pb2, run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import AuthControlPlane
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import QUICK_RETRY, single_step

UNSAFE_STEPS = Path(__file__).resolve().parents[1] / "support" / "unsafe_steps.py"


def transfer(name: str) -> definition_pb2.WorkflowDefinition:
    """One unsafe step. The node leaves idempotency out: the worker's declaration decides.

    Its retry policy would allow five attempts, so a dead letter after one is the
    declaration's doing, not an exhausted policy's.
    """
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "transfer",
                    "task": {
                        "step_type": "e2e-unsafe-transfer",
                        "step_version": "1",
                        "input": "input",
                        "retry": QUICK_RETRY,
                    },
                }
            ],
        }
    )


def test_unsafe_step_of_a_killed_worker_is_dead_lettered_not_retried(
    control_plane: AuthControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    first = worker(UNSAFE_STEPS)  # its Hello declares e2e-unsafe-transfer as "none"
    register(stub, transfer("wire-money"))
    register(stub, single_step("other-work", QUICK_RETRY))
    run_id = start_run(stub, "wire-money", {"to": "DE89 3704", "amount": 500})
    assert_eventually(
        lambda: execution_log.started(run_id, "transfer"), message="the transfer began"
    )

    first.kill()
    run = wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    (step,) = run.steps
    assert step.status == run_pb2.STEP_STATUS_DEAD_LETTERED, step
    assert step.attempt == 1
    assert [a.outcome for a in step.attempts] == [run_pb2.ATTEMPT_OUTCOME_LOST]
    assert step.last_error.type == "AttemptLost" and not step.last_error.retryable
    events = history(stub, run_id)
    assert_history_well_formed(events)
    (dead,) = events_of(events, "STEP_DEAD_LETTERED", "transfer")
    assert "idempotency none" in dead.data["reason"], dead
    assert events_of(events, "RETRY_SCHEDULED") == []
    assert [e.attempt for e in events_of(events, "ATTEMPT_STARTED")] == [1]

    # A worker that connects afterwards is live and handed other work, but not the transfer.
    second = worker(UNSAFE_STEPS)
    other = start_run(stub, "other-work", {"trail": []})
    wait_for_status(stub, other, "COMPLETED")
    assert {e.pid for e in execution_log.started(other)} == {second.pid}
    assert [(e.pid, e.attempt) for e in execution_log.started(run_id)] == [(first.pid, 1)]
    assert status_name(get_run(stub, run_id).status) == "NEEDS_ATTENTION"
    assert history(stub, run_id) == events
