"""GetRunAt: a run as it was after each of its history events, replayed from history alone.

The last snapshot of a finished run agrees with GetRun; every snapshot before it shows the
steps as they were then (scheduled, running, completed with their outputs), including a
failed attempt and its retry, and the pause an operator made.
"""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_run_control.control_support import four_steps, refused
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
    wait_for_status,
)


def at(stub: Stub, run_id: str, seq: int) -> run_pb2.RunSnapshot:
    return stub.GetRunAt(ws.GetRunAtRequest(run_id=run_id, seq=seq), timeout=30).snapshot


def steps_of(snapshot: run_pb2.RunSnapshot) -> dict[str, str]:
    return {
        s.node_id: run_pb2.StepStatus.Name(s.status).removeprefix("STEP_STATUS_")
        for s in snapshot.steps
    }


def test_each_seq_shows_the_run_as_it_was(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, four_steps("replayed"))
    worker()
    run_id = start_run(stub, "replayed", {"trail": [], "b": {"fail_times": 1}})
    final = wait_for_status(stub, run_id, "COMPLETED")
    events = history(stub, run_id)

    first = at(stub, run_id, 1)
    assert first.seq == 1 and first.last_seq == len(events)
    assert run_pb2.EventType.Name(first.event.type) == "EVENT_TYPE_RUN_STARTED"
    assert payload_value(first.input) == {"trail": [], "b": {"fail_times": 1}}
    assert first.status == run_pb2.RUN_STATUS_RUNNING and not first.steps

    (a_done,) = events_of(events, "ATTEMPT_COMPLETED", "a")
    after_a = at(stub, run_id, a_done.seq)
    assert steps_of(after_a) == {"a": "COMPLETED"}
    assert payload_value(after_a.steps[0].output)["trail"] == ["a"]

    (b_failed,) = events_of(events, "ATTEMPT_FAILED", "b")
    (retry,) = events_of(events, "RETRY_SCHEDULED", "b")
    failed = at(stub, run_id, b_failed.seq)
    assert failed.steps[1].last_error.type == "FlakyDependency"
    assert [a.outcome for a in failed.steps[1].attempts] == [run_pb2.ATTEMPT_OUTCOME_FAILED]
    waiting = at(stub, run_id, retry.seq)
    assert steps_of(waiting)["b"] == "RETRY_WAIT"
    assert waiting.steps[1].attempt == 2 and waiting.steps[1].HasField("next_attempt_at")

    (c_scheduled,) = events_of(events, "STEP_SCHEDULED", "c")
    scheduled = at(stub, run_id, c_scheduled.seq)
    assert steps_of(scheduled) == {"a": "COMPLETED", "b": "COMPLETED", "c": "SCHEDULED"}
    assert payload_value(scheduled.steps[2].input)["trail"] == ["a", "b"]
    assert scheduled.current_node == "c"

    last = at(stub, run_id, len(events))
    assert last.status == final.status == run_pb2.RUN_STATUS_COMPLETED
    assert payload_value(last.output) == payload_value(final.output)
    assert [(s.node_id, s.status, s.attempt) for s in last.steps] == [
        (s.node_id, s.status, s.attempt) for s in final.steps
    ]
    assert [payload_value(s.output) for s in last.steps] == [
        payload_value(s.output) for s in final.steps
    ]
    assert [payload_value(s.input) for s in last.steps] == [
        payload_value(s.input) for s in final.steps
    ]
    assert [[a.outcome for a in s.attempts] for s in last.steps] == [
        [a.outcome for a in s.attempts] for s in final.steps
    ]
    assert not last.notes


def test_a_pause_shows_between_its_pause_and_resume(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, four_steps("replayed-pause"))
    run_id = start_run(stub, "replayed-pause", {"trail": []})
    stub.PauseRun(ws.PauseRunRequest(run_id=run_id, reason="look first"), timeout=30)
    stub.ResumeRun(ws.ResumeRunRequest(run_id=run_id), timeout=30)
    events = history(stub, run_id)
    (paused,) = events_of(events, "RUN_PAUSED")
    assert not at(stub, run_id, paused.seq - 1).HasField("paused")
    assert at(stub, run_id, paused.seq).paused.reason == "look first"
    assert not at(stub, run_id, paused.seq + 1).HasField("paused")
    assert get_run(stub, run_id).status == run_pb2.RUN_STATUS_RUNNING


def test_refusals(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(stub, four_steps("replay-refused"))
    run_id = start_run(stub, "replay-refused", {"trail": []})
    last = len(history(stub, run_id))
    before = row_counts(control_plane.database_url)
    for request, code, field in [
        (ws.GetRunAtRequest(run_id=run_id, seq=0), "INVALID_ARGUMENT", "seq:"),
        (ws.GetRunAtRequest(run_id=run_id, seq=last + 1), "INVALID_ARGUMENT", f"({last})"),
        (ws.GetRunAtRequest(seq=1), "INVALID_ARGUMENT", "run_id:"),
        (ws.GetRunAtRequest(run_id="no-such-run", seq=1), "NOT_FOUND", "no-such-run"),
    ]:
        error = refused(stub.GetRunAt, request)
        assert error.code().name == code and field in (error.details() or ""), error.details()
    assert row_counts(control_plane.database_url) == before
