"""Acceptance: a switch takes the branch its conditions choose; a parallel node runs its
branches at the same time and joins them; a failing branch cancels the others and the saga
compensates what completed.
"""

from __future__ import annotations

from typing import Any

import pytest
from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    Event,
    assert_history_well_formed,
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import SAGA_STEPS_MODULE, effects
from tests.support.workflows import QUICK_RETRY, task_node


def routing(name: str) -> Any:
    """Big orders go to review, French ones to french, the rest to auto."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "route",
                    "switch": {
                        "cases": [
                            {"condition": "input.amount > `1000`", "next": "review"},
                            {"condition": "input.country == 'FR'", "next": "french"},
                        ],
                        "default_next": "auto",
                    },
                },
                *(task_node(node, None, "{trail: [input.order]}") for node in NODES_AFTER_ROUTE),
            ],
        }
    )


NODES_AFTER_ROUTE = ("review", "french", "auto")


@pytest.mark.parametrize(
    ("order", "case", "branch"),
    [
        # The first true case wins, though the second is true too.
        ({"order": "big", "amount": 5000, "country": "FR"}, 0, "review"),
        ({"order": "fr", "amount": 10, "country": "FR"}, 1, "french"),
        ({"order": "small", "amount": 10, "country": "US"}, "default", "auto"),
    ],
)
def test_switch_takes_the_branch_its_conditions_choose(
    control_plane: ControlPlane,
    worker: StartWorker,
    execution_log: ExecutionLog,
    order: dict[str, Any],
    case: int | str,
    branch: str,
) -> None:
    stub = control_plane.stub
    register(stub, routing("route-order"))
    worker()

    run_id = start_run(stub, "route-order", order)
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output)["trail"] == [order["order"], branch]
    assert [e.node_id for e in execution_log.started(run_id)] == [branch]
    events = history(stub, run_id)
    assert_history_well_formed(events)
    (taken,) = events_of(events, "BRANCH_TAKEN", "route")
    assert taken.data == {"case": case, "next": branch}
    assert {e.node_id for e in events} == {"", "route", branch}


def fan_out(name: str, left: list[dict[str, Any]], right: list[dict[str, Any]]) -> Any:
    """fan: the chains `left` and `right` at once, then the task `after`."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "fan",
                    "parallel": {"branches": [left[0]["id"], right[0]["id"]], "join": "all"},
                    "next": "after",
                },
                *left,
                *right,
                task_node("after", None, "{trail: [`joined`]}"),
            ],
        }
    )


def interval(events: list[Event], node_id: str) -> tuple[float, float]:
    (started,) = events_of(events, "ATTEMPT_STARTED", node_id)
    (completed,) = events_of(events, "ATTEMPT_COMPLETED", node_id)
    return started.time, completed.time


def test_parallel_branches_overlap_in_time(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    sleepy = "{trail: `[]`, sleep_seconds: `1.5`}"
    register(
        stub,
        fan_out("fan-out", [task_node("left", None, sleepy)], [task_node("right", None, sleepy)]),
    )
    worker()

    run_id = start_run(stub, "fan-out", {})
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output)["trail"] == ["joined", "after"]
    events = history(stub, run_id)
    assert_history_well_formed(events)
    left, right = interval(events, "left"), interval(events, "right")
    print(f"\nleft {left[1] - left[0]:.2f} s, right {right[1] - right[0]:.2f} s, ", end="")
    print(f"overlapping {min(left[1], right[1]) - max(left[0], right[0]):.2f} s")
    assert max(left[0], right[0]) < min(left[1], right[1]), (left, right)
    # The workers' own clocks agree: each branch began before the other one returned.
    began = {e.node_id: e.time for e in execution_log.started(run_id)}
    returned = {e.node_id: e.time for e in execution_log.entries() if e.phase == "returned"}
    assert began["left"] < returned["right"] and began["right"] < returned["left"]
    (fanned,) = events_of(events, "PARALLEL_STARTED", "fan")
    (joined,) = events_of(events, "PARALLEL_JOINED", "fan")
    assert fanned.data["branches"] == ["left", "right"]
    assert set(joined.data["outputs"]) == {"left", "right"}
    assert joined.time >= max(left[1], right[1])
    (after,) = events_of(events, "STEP_SCHEDULED", "after")
    assert after.seq > joined.seq


def compensated(node: dict[str, Any]) -> dict[str, Any]:
    node["task"] |= {
        "compensate_step": "e2e-undo",
        "compensate_input": "{undo: self.output.trail}",
        "compensate_idempotency": "key",
        "compensate_retry": QUICK_RETRY,
    }
    return node


def test_failing_branch_cancels_the_other_and_compensates_what_completed(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    # Left: l1 completes at once, then l2 runs for a minute (a handler that honours Cancel).
    # Right: r1 fails for good after 3 s, when l2 is running.
    left = [
        compensated(task_node("l1", "l2", "{trail: `[]`}")),
        compensated(task_node("l2", None, "{trail: `[]`, sleep_seconds: `60`}", "e2e-work-sync")),
    ]
    right = [
        compensated(
            task_node("r1", None, "{trail: `[]`, sleep_seconds: `3`, non_retryable: `true`}")
        )
    ]
    register(stub, fan_out("fan-fails", left, right))
    worker(SAGA_STEPS_MODULE)

    run_id = start_run(stub, "fan-fails", {})
    run = wait_for_status(stub, run_id, "COMPENSATED")

    l2_began = execution_log.started(run_id, "l2")
    r1_failed = [e for e in execution_log.entries() if e.node_id == "r1" and e.phase == "raised"]
    assert l2_began and r1_failed and l2_began[0].time < r1_failed[0].time, "l2 ran when r1 failed"
    events = history(stub, run_id)
    assert_history_well_formed(events)
    (dead,) = events_of(events, "STEP_DEAD_LETTERED")
    assert dead.node_id == "r1" and dead.data["error"]["type"] == "CardDeclined"
    # The running branch's step and the join itself are cancelled; nothing else was open.
    cancelled = {e.node_id: e.data["kind"] for e in events_of(events, "STEP_CANCELLED")}
    assert cancelled == {"l2": "task", "fan": "parallel"}, cancelled
    assert min(e.seq for e in events_of(events, "STEP_CANCELLED")) > dead.seq
    (unwind,) = events_of(events, "COMPENSATION_STARTED")
    assert unwind.data["order"] == ["l1"]
    assert [e.node_id for e in effects(execution_log)] == ["l1.compensation"]
    ran = [e.node_id for e in execution_log.started(run_id)]
    assert sorted(ran[:2]) == ["l1", "r1"] and ran[2:] == ["l2", "l1.compensation"], ran
    assert not [e for e in events if e.node_id == "after"]
    (compensated_run,) = events_of(events, "RUN_COMPENSATED")
    # The cancelled attempt may still report how it ended: recorded, never applied (law 3).
    after_the_end = events[events.index(compensated_run) + 1 :]
    assert {(e.type, e.node_id) for e in after_the_end} <= {("RESULT_IGNORED", "l2")}
    steps = {s.node_id: run_pb2.StepStatus.Name(s.status) for s in run.steps}
    assert steps["l1"] == "STEP_STATUS_COMPENSATED"
    assert steps["l2"] == "STEP_STATUS_CANCELLED"
    assert steps["r1"] == "STEP_STATUS_DEAD_LETTERED"
    # The cancellation reached the worker: l2's handler stopped instead of running its minute.
    stopped = assert_eventually(
        lambda: [e for e in execution_log.entries() if e.node_id == "l2" and e.phase != "started"],
        message="l2's handler stopped",
    )
    assert [(e.phase, e.error) for e in stopped] == [("raised", "StepCancelled")]
