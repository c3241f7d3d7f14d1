"""Issue 15, items 1 and 3: a Cancel frees the task's window slot whatever the worker does,
and says why; Credit is the window itself (a repeated one replaces it, a negative one is
refused)."""

from __future__ import annotations

import grpc
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ControlPlane
from tests.support.runs import (
    events_of,
    get_run,
    history,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.worker_protocol.contract import (
    STEP,
    WORKFLOW,
    counts,
    kinds,
    messages_until,
    messages_until_refused,
    open_stream,
    register_one_step,
    task_rows,
)


def test_a_cancelled_task_frees_its_slot_and_its_late_result_is_acknowledged_and_ignored(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "cancelled-worker", credit=1)
    first = start_run(server.stub, "contract", {"n": 1})
    task = stream.next_task()
    assert task.run_id == first

    server.stub.CancelRun(ws.CancelRunRequest(run_id=first, reason="nobody wants it"), timeout=30)
    cancel = stream.next_of("cancel").cancel
    assert cancel.task_id == task.task_id
    assert cancel.reason == "run cancelled: nobody wants it"

    # The worker just stops the task (no Fail, no HandBack): its only slot is free anyway.
    second = start_run(server.stub, "contract", {"n": 2})
    assert stream.next_task().run_id == second

    # A heartbeat for the cancelled task extends nothing; a late result is acknowledged (the
    # worker may forget it), recorded as ignored (law 3), and changes nothing else.
    stream.heartbeat(task.task_id)
    refused = stream.next_of("refused").refused
    assert refused.task_id == task.task_id and "cancelled" in refused.reason
    before = counts(server.database_url)
    stream.complete(task.task_id, task.attempt, {"too": "late"})
    assert list(stream.next_of("ack").ack.task_ids) == [task.task_id]
    ignored = events_of(history(server.stub, first), "RESULT_IGNORED")
    assert [(e.node_id, e.attempt) for e in ignored] == [("work", 1)]
    after = counts(server.database_url)
    assert {**after, "history": before["history"]} == before
    run = get_run(server.stub, first)
    assert status_name(run.status) == "CANCELLED"
    assert not run.HasField("output") or not run.output.data
    stream.close()


def test_a_timed_out_attempt_is_cancelled_with_its_reason_and_its_slot_freed(
    server: ControlPlane,
) -> None:
    task_node = {"step_type": STEP, "input": "input", "idempotency": "key"}
    register(
        server.stub,
        definition_from_dict(
            {
                "name": WORKFLOW,
                "version": "1",
                "nodes": [{"id": "work", "task": {**task_node, "timeout_seconds": 1}}],
            }
        ),
    )
    stream = open_stream(server, "slow-worker", credit=1)
    run_id = start_run(server.stub, "contract", {"n": 1})
    task = stream.next_task()
    # The worker heartbeats on, but the attempt's timeout passes.
    cancel = stream.next_of("cancel", timeout=60).cancel
    assert cancel.task_id == task.task_id
    assert cancel.reason.startswith("timed out")
    # Its slot is free: the retry (or any task) can come to it again.
    again = stream.next_task(timeout=60)
    assert again.run_id == run_id and again.attempt == 2
    stream.close()


def test_credit_is_the_window_and_a_repeated_credit_replaces_it(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "windowed-worker", credit=1)
    stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=1)))
    stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=1)))
    runs = [start_run(server.stub, "contract", {"n": n}) for n in range(3)]
    seen = messages_until_refused(stream, "no-such-run:x:1")
    leased = [row for row in task_rows(server.database_url) if row[1] == "leased"]
    assert len(leased) == 1, (leased, seen)
    assert kinds(seen) == ["tasks"], seen
    task = seen[0].tasks.tasks[0]

    # A larger window sends more; the result of a task frees its slot at once.
    stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=2)))
    second = stream.next_task()
    stream.complete(task.task_id, task.attempt, {"done": 1})
    # The freed slot's task is sent in the same commit as the Ack, and before it.
    until_ack = messages_until(stream, "ack")
    assert [list(m.ack.task_ids) for m in until_ack if m.HasField("ack")] == [[task.task_id]]
    (third,) = [t for m in until_ack if m.HasField("tasks") for t in m.tasks.tasks]
    assert {task.run_id, second.run_id, third.run_id} == set(runs)

    # Window 0: nothing new, even once a slot is free.
    stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=0)))
    fourth = start_run(server.stub, "contract", {"n": 4})
    stream.complete(second.task_id, second.attempt, {"done": 2})
    assert kinds(messages_until(stream, "ack")) == ["ack"]
    assert kinds(messages_until_refused(stream, "no-such-run:y:1")) == []
    assert status_name(get_run(server.stub, fourth).status) == "RUNNING"
    stream.close()
    wait_for_status(server.stub, runs[0], "COMPLETED")


def test_a_negative_credit_ends_the_stream_naming_the_field(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    for n in (-1, 10_001):
        stream = open_stream(server, f"bad-credit-{n}", credit=0)
        stream.send(wpb.WorkerMessage(credit=wpb.Credit(n=n)))
        error = stream.wait_ended()
        assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "credit.n" in (error.details() or ""), error.details()
