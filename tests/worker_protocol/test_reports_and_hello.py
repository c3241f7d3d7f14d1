"""Issue 15, items 5, 6 and 10: results name their attempt, reports for tasks the stream
does not hold are refused (never silently acknowledged), an undecodable output fails the
attempt, and a Hello is refused precisely (unknown namespace, no step types, a second one)."""

from __future__ import annotations

import grpc
from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as wpb

from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import events_of, history, payload_value, start_run, wait_for_status
from tests.worker_protocol.contract import (
    STEP,
    counts,
    open_stream,
    register_one_step,
    task_rows,
)


def test_a_result_with_a_wrong_or_missing_attempt_or_for_an_unknown_task_is_refused(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "confused-worker", credit=1)
    run_id = start_run(server.stub, "contract", {"n": 1})
    task = stream.next_task()
    before = counts(server.database_url), task_rows(server.database_url)

    stream.complete(task.task_id, task.attempt + 1, {"x": 1})
    wrong = stream.next_of("refused").refused
    assert wrong.task_id == task.task_id
    assert wrong.reason == f"wrong attempt 2: task {task.task_id} is attempt 1"
    stream.send(wpb.WorkerMessage(fail=wpb.Fail(task_id=task.task_id, error_type="X")))
    missing = stream.next_of("refused").refused
    assert missing.reason == f"attempt is missing: task {task.task_id} is attempt 1"
    hand_back = wpb.HandBack(task_id=task.task_id, attempt=7)
    stream.send(wpb.WorkerMessage(hand_back=hand_back))
    assert stream.next_of("refused").refused.reason.startswith("wrong attempt 7")

    unknown = f"{run_id}:nowhere:1"
    stream.complete(unknown, 1, {"x": 1})
    refused = stream.next_of("refused").refused
    assert refused.task_id == unknown and "does not hold" in refused.reason
    stream.heartbeat(unknown)
    assert stream.next_of("refused").refused.task_id == unknown
    assert (counts(server.database_url), task_rows(server.database_url)) == before

    # The lease stayed: the right attempt is recorded.
    stream.complete(task.task_id, task.attempt, {"right": True})
    assert list(stream.next_of("ack").ack.task_ids) == [task.task_id]
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"right": True}
    stream.close()


def test_an_undecodable_output_fails_the_attempt_and_is_never_a_success(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "garbling-worker", credit=2)
    outputs = {
        "invalid": common_pb2.Payload(encoding="json/plain", data=b"{not json"),
        "foreign": common_pb2.Payload(encoding="application/x-protobuf", data=b"\x08\x01"),
    }
    runs: dict[str, str] = {}
    for name in outputs:
        runs[name] = start_run(server.stub, "contract", {"case": name})
    tasks: dict[str, wpb.Task] = {}
    while len(tasks) < len(outputs):
        for task in stream.next_of("tasks").tasks.tasks:
            tasks[task.run_id] = task
    for name, output in outputs.items():
        task = tasks[runs[name]]
        complete = wpb.Complete(task_id=task.task_id, attempt=task.attempt, output=output)
        stream.send(wpb.WorkerMessage(complete=complete))
    for name, run_id in runs.items():
        run = wait_for_status(server.stub, run_id, "NEEDS_ATTENTION")
        (step,) = run.steps
        assert step.last_error.type == "UndecodableOutput", (name, step.last_error)
        assert not step.last_error.retryable
        assert not step.HasField("output") or not step.output.data
        assert not events_of(history(server.stub, run_id), "ATTEMPT_COMPLETED")
    assert (
        "output.data"
        in wait_for_status(server.stub, runs["invalid"], "NEEDS_ATTENTION")
        .steps[0]
        .last_error.message
    )
    assert (
        "output.encoding"
        in wait_for_status(server.stub, runs["foreign"], "NEEDS_ATTENTION")
        .steps[0]
        .last_error.message
    )
    stream.close()


def refused_hello(server: ControlPlane, **hello: object) -> grpc.RpcError:
    steps = hello.pop("step_types", [declaration(STEP)])
    stream = RawWorkerStream(server.channel, "hello-worker", steps, 1, **hello)  # type: ignore[arg-type]
    error = stream.wait_ended()
    assert error is not None, "the stream was accepted"
    assert not [m for m in stream.received if m.WhichOneof("message") == "welcome"]
    return error


def test_a_hello_is_refused_precisely_and_writes_nothing(server: ControlPlane) -> None:
    register_one_step(server)
    before = counts(server.database_url)

    unknown = refused_hello(server, namespace="no-such-team")
    assert unknown.code() == grpc.StatusCode.NOT_FOUND, unknown
    assert unknown.details() == (
        "namespace 'no-such-team' is unknown: no workflow definition is registered in it and "
        "the worker's credential does not name it"
    )
    empty = refused_hello(server, step_types=[])
    assert empty.code() == grpc.StatusCode.INVALID_ARGUMENT, empty
    assert "hello.step_types" in (empty.details() or "")
    assert counts(server.database_url) == before

    twice = open_stream(server, "twice-worker", credit=0)
    twice.send(
        wpb.WorkerMessage(hello=wpb.Hello(worker_id="twice-worker", step_types=[declaration(STEP)]))
    )
    error = twice.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "second" in (error.details() or ""), error.details()
