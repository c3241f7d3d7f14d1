"""Acceptance: a late Complete for a superseded attempt is recorded and ignored (law 3).

Raw worker streams play the workers, because the SDK never reports for an attempt it no
longer holds: attempt 1 is taken on one stream, which stops heartbeating, so its lease runs
out and attempt 2 goes to another; then that stream's result for attempt 1 arrives after
all, while attempt 2 is running. Only the stream that held an attempt's lease may report it:
the same result sent on any other stream is refused and writes nothing.
"""

from __future__ import annotations

from surefoot.v1 import definition_pb2, run_pb2
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)

STEP_TYPE = "raw-step"


def two_raw_steps() -> definition_pb2.WorkflowDefinition:
    def node(node_id: str, next_node: str, expression: str) -> dict[str, object]:
        task = {"step_type": STEP_TYPE, "input": expression, "idempotency": "key"}
        return {"id": node_id, "next": next_node, "task": task}

    return definition_from_dict(
        {
            "name": "late-result",
            "version": "1",
            "nodes": [
                node("first", "second", "input"),
                node("second", "", "{from_first: steps.first.output}"),
            ],
        }
    )


def test_late_complete_for_superseded_attempt_is_recorded_and_ignored(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    register(stub, two_raw_steps())
    departing = RawWorkerStream(control_plane.channel, "raw-departing", [declaration(STEP_TYPE)], 1)
    run_id = start_run(stub, "late-result", {"order": 7})
    attempt_1 = departing.next_task()
    assert (attempt_1.task_id, attempt_1.attempt) == (f"{run_id}:first:1", 1)

    # The worker of attempt 1 stops heartbeating: its lease runs out, it is told to stop,
    # and attempt 2 goes to another worker, same key and input.
    current = RawWorkerStream(control_plane.channel, "raw-current", [declaration(STEP_TYPE)], 1)
    assert departing.next_of("cancel").cancel.task_id == attempt_1.task_id
    attempt_2 = current.next_task()
    assert (attempt_2.node_id, attempt_2.attempt) == ("first", 2)
    assert attempt_2.idempotency_key == attempt_1.idempotency_key
    assert payload_value(attempt_2.input) == payload_value(attempt_1.input) == {"order": 7}
    current.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat(task_ids=[attempt_2.task_id])))

    # Attempt 1's result, sent on a stream that never held it, is refused: nothing written.
    before = history(stub, run_id)
    other = RawWorkerStream(control_plane.channel, "raw-other", [declaration(STEP_TYPE)])
    other.complete(attempt_1.task_id, 1, {"made_by": "somebody else"})
    assert other.next_of("refused").refused.task_id == attempt_1.task_id
    assert history(stub, run_id) == before

    # Attempt 1's result arrives late, on its own stream, while attempt 2 runs.
    departing.complete(attempt_1.task_id, 1, {"made_by": "attempt 1"})
    ignored = assert_eventually(
        lambda: events_of(history(stub, run_id), "RESULT_IGNORED"),
        message="the late result is recorded",
    )
    assert [(e.node_id, e.attempt) for e in ignored] == [("first", 1)]
    assert "superseded by attempt 2" in ignored[0].data["reason"]
    assert ignored[0].data["result"]["output"] == {"made_by": "attempt 1"}
    events = history(stub, run_id)
    assert not events_of(events, "ATTEMPT_COMPLETED")
    assert not events_of(events, "STEP_SCHEDULED", "second")
    run = get_run(stub, run_id)
    assert run.status == run_pb2.RUN_STATUS_RUNNING
    assert run.current_node == "first"

    # The departing worker goes: its window slot, free again, must not take the next step.
    departing.close()
    departing.wait_ended()

    # Attempt 2 completes: the run advances once, with attempt 2's output.
    current.complete(attempt_2.task_id, 2, {"made_by": "attempt 2"})
    second = current.next_task()
    assert second.node_id == "second"
    assert payload_value(second.input) == {"from_first": {"made_by": "attempt 2"}}
    # A duplicate of attempt 2's result, after the step completed, is refused: recorded once.
    current.complete(attempt_2.task_id, 2, {"made_by": "a duplicate of attempt 2"})
    assert current.next_of("refused").refused.task_id == attempt_2.task_id
    current.complete(second.task_id, second.attempt, {"done": True})
    run = wait_for_status(stub, run_id, "COMPLETED")

    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert [(e.node_id, e.attempt) for e in events_of(events, "ATTEMPT_COMPLETED")] == [
        ("first", 2),
        ("second", 1),
    ]
    assert events_of(events, "ATTEMPT_COMPLETED", "first")[0].data["output"] == {
        "made_by": "attempt 2"
    }
    assert len(events_of(events, "STEP_SCHEDULED", "second")) == 1
    assert [(e.node_id, e.attempt) for e in events_of(events, "RESULT_IGNORED")] == [
        ("first", 1),
    ]
    (first,) = [s for s in run.steps if s.node_id == "first"]
    assert payload_value(first.output) == {"made_by": "attempt 2"}
    assert payload_value(run.output) == {"done": True}
    for stream in (departing, current, other):
        stream.close()
