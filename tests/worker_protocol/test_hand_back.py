"""Issue 15, item 9: a HandBack costs no attempt, the step's next attempt goes to another
worker that has room for it, and a later success clears the step's last error."""

from __future__ import annotations

from surefoot.v1 import worker_service_pb2 as wpb

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.runs import events_of, history, start_run, wait_for_status
from tests.worker_protocol.contract import open_stream, register_one_step, task_rows


def hand_back(stream_task: wpb.Task) -> wpb.WorkerMessage:
    back = wpb.HandBack(task_id=stream_task.task_id, attempt=stream_task.attempt, reason="busy")
    return wpb.WorkerMessage(hand_back=back)


def test_a_hand_back_costs_no_attempt_and_goes_to_another_worker(server: ControlPlane) -> None:
    # One attempt only: were a hand back an attempt, the first would dead-letter the step.
    register_one_step(server, retry={"max_attempts": 1})
    first = open_stream(server, "first-worker", credit=1)
    second = open_stream(server, "second-worker", credit=1)
    run_id = start_run(server.stub, "contract", {"n": 1})

    streams = {"first-worker": first, "second-worker": second}
    leased = assert_eventually(
        lambda: [row for row in task_rows(server.database_url) if row[1] == "leased"]
    )
    holder = streams[leased[0][3]]
    task = holder.next_task()
    other = second if holder is first else first

    holder.send(hand_back(task))
    again = other.next_task()
    assert again.run_id == run_id and again.attempt == 2
    # And back again to the first: the second gives it back too.
    other.send(hand_back(again))
    third = holder.next_task()
    assert third.attempt == 3

    holder.complete(third.task_id, third.attempt, {"done": True})
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    (step,) = run.steps
    assert not step.last_error.type and not step.last_error.message
    events = history(server.stub, run_id)
    lost = events_of(events, "ATTEMPT_LOST")
    assert [e.attempt for e in lost] == [1, 2]
    assert not events_of(events, "STEP_DEAD_LETTERED")
    for stream in streams.values():
        stream.close()
