"""Acceptance: a saga unwinds. Step 3 of 4 dead-letters and its node routes failure to
`compensate`: the compensations of steps 2 and 1 run, in that order, exactly once each.

Only completed steps are compensated (not the step that failed, not the one never reached),
and a compensation is a step like any other: its worker may die, another finishes it, and
what it did happened once.
"""

from __future__ import annotations

from typing import Any

from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import SAGA_STEPS_MODULE, effects
from tests.support.workflows import QUICK_RETRY, shaped_by, task_node

NODES = ("a", "b", "c", "d")


def compensated_task(node_id: str, next_node: str | None, source: str) -> dict[str, Any]:
    """A task whose compensation (e2e-undo) gets the trail the step output, shaped by the
    run input's `undo.<node id>` object."""
    node = task_node(node_id, next_node, shaped_by(source, node_id))
    node["task"] |= {
        "compensate_step": "e2e-undo",
        "compensate_input": f"merge({{undo: self.output.trail}}, input.undo.{node_id} || `{{}}`)",
        "compensate_idempotency": "key",
        "compensate_retry": QUICK_RETRY,
    }
    return node


def four_step_saga(name: str) -> Any:
    """a → b → c → d, every step with a compensation; c's failure compensates."""
    c = compensated_task("c", "d", "steps.b.output.trail")
    c["task"]["on_failure"] = "compensate"
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                compensated_task("a", "b", "input.trail"),
                compensated_task("b", "c", "steps.a.output.trail"),
                c,
                compensated_task("d", None, "steps.c.output.trail"),
            ],
        }
    )


def saga_input(**undo: dict[str, Any]) -> dict[str, Any]:
    # c declines a card: a non-retryable error, so it dead-letters on its first attempt.
    return {"trail": [], "c": {"non_retryable": True}, "undo": undo}


def test_failed_step_three_compensates_steps_two_then_one_once_each(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_step_saga("saga-unwinds"))
    worker(SAGA_STEPS_MODULE)

    run_id = start_run(stub, "saga-unwinds", saga_input())
    run = wait_for_status(stub, run_id, "COMPENSATED")

    # What really ran, across processes, in the order it began.
    ran = [(e.node_id, e.step_type) for e in execution_log.started(run_id)]
    assert ran == [
        ("a", "e2e-work"),
        ("b", "e2e-work"),
        ("c", "e2e-work"),
        ("b.compensation", "e2e-undo"),
        ("a.compensation", "e2e-undo"),
    ]
    # Each compensation undid what its own step did: its input derives from that output.
    undo_inputs = {e.node_id: e.input for e in execution_log.started(run_id, None)}
    assert undo_inputs["b.compensation"] == {"undo": ["a", "b"]}
    assert undo_inputs["a.compensation"] == {"undo": ["a"]}
    assert [(e.node_id, e.attempt) for e in effects(execution_log)] == [
        ("b.compensation", 1),
        ("a.compensation", 1),
    ]

    events = history(stub, run_id)
    assert_history_well_formed(events)
    (dead,) = events_of(events, "STEP_DEAD_LETTERED")
    assert dead.node_id == "c" and dead.data["error"]["type"] == "CardDeclined", dead
    (started,) = events_of(events, "COMPENSATION_STARTED")
    assert started.data["order"] == ["b", "a"]
    assert started.seq > dead.seq
    # One compensation at a time: a's is scheduled only once b's has completed.
    unwinding = [
        (e.type, e.node_id)
        for e in events
        if e.node_id.endswith(".compensation")
        and e.type in ("STEP_SCHEDULED", "ATTEMPT_STARTED", "ATTEMPT_COMPLETED")
    ]
    assert unwinding == [
        ("STEP_SCHEDULED", "b.compensation"),
        ("ATTEMPT_STARTED", "b.compensation"),
        ("ATTEMPT_COMPLETED", "b.compensation"),
        ("STEP_SCHEDULED", "a.compensation"),
        ("ATTEMPT_STARTED", "a.compensation"),
        ("ATTEMPT_COMPLETED", "a.compensation"),
    ]
    assert not [e for e in events if e.node_id in ("d", "c.compensation", "d.compensation")]
    assert events[-1].type == "RUN_COMPENSATED"
    assert len(events_of(events, "RUN_COMPENSATED")) == 1
    assert not events_of(events, "RUN_COMPLETED") and not events_of(events, "RUN_FAILED")

    steps = {s.node_id: (s.kind, run_pb2.StepStatus.Name(s.status)) for s in run.steps}
    assert steps == {
        "a": ("task", "STEP_STATUS_COMPENSATED"),
        "b": ("task", "STEP_STATUS_COMPENSATED"),
        "c": ("task", "STEP_STATUS_DEAD_LETTERED"),
        "b.compensation": ("compensation", "STEP_STATUS_COMPLETED"),
        "a.compensation": ("compensation", "STEP_STATUS_COMPLETED"),
    }
    assert run.last_error.type == "CardDeclined"


def test_compensation_whose_worker_is_killed_completes_once_on_another_worker(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_step_saga("saga-worker-crash"))
    first = worker(SAGA_STEPS_MODULE)
    # b's compensation would take a minute on its first attempt; the next one is quick.
    slow = {"sleep_seconds": 60, "sleep_attempts": 1}
    run_id = start_run(stub, "saga-worker-crash", saga_input(b=slow))
    assert_eventually(
        lambda: execution_log.started(run_id, "b.compensation"),
        message="b's compensation began on the first worker",
    )
    second = worker(SAGA_STEPS_MODULE)

    first.kill()
    run = wait_for_status(stub, run_id, "COMPENSATED")

    undo_b = execution_log.started(run_id, "b.compensation")
    assert [(e.attempt, e.pid) for e in undo_b] == [(1, first.pid), (2, second.pid)]
    # At least once, with the same input and key each time...
    assert undo_b[0].input == undo_b[1].input == {"undo": ["a", "b"], **slow}
    assert undo_b[0].idempotency_key == undo_b[1].idempotency_key
    # ...and what it did happened once: the killed attempt never got to its effect.
    applied = effects(execution_log)
    assert [(e.node_id, e.attempt, e.pid) for e in applied] == [
        ("b.compensation", 2, second.pid),
        ("a.compensation", 1, second.pid),
    ]
    assert applied[0].idempotency_key == undo_b[0].idempotency_key
    assert [(e.node_id, e.pid) for e in execution_log.started(run_id, "a.compensation")] == [
        ("a.compensation", second.pid)
    ]

    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert [(e.type, e.attempt) for e in events if e.node_id == "b.compensation"] == [
        ("STEP_SCHEDULED", 1),
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_LOST", 1),
        ("RETRY_SCHEDULED", 2),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_COMPLETED", 2),
    ]
    assert len(events_of(events, "ATTEMPT_COMPLETED", "a.compensation")) == 1
    assert events[-1].type == "RUN_COMPENSATED"
    undone = {s.node_id: s.status for s in get_run(stub, run_id).steps}
    assert undone["a"] == undone["b"] == run_pb2.STEP_STATUS_COMPENSATED
    assert run.status == run_pb2.RUN_STATUS_COMPENSATED
