"""Issue 15, item 8: a heartbeat carries each task's own progress details, and GetRun shows
them on the step's running attempt."""

from __future__ import annotations

import json

import grpc
from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as wpb

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.runs import get_run, start_run
from tests.worker_protocol.contract import open_stream, register_one_step


def details(value: object) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


def running_details(server: ControlPlane, run_id: str) -> object | None:
    (step,) = get_run(server.stub, run_id).steps
    running = [a for a in step.attempts if a.HasField("details")]
    return json.loads(running[0].details.data) if running else None


def test_each_task_has_its_own_progress_details_readable_with_get_run(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "progress-worker", credit=2)
    runs = [start_run(server.stub, "contract", {"n": n}) for n in range(2)]
    tasks: dict[str, wpb.Task] = {}
    while len(tasks) < 2:
        for task in stream.next_of("tasks").tasks.tasks:
            tasks[task.run_id] = task
    progress = [
        wpb.TaskProgress(task_id=tasks[run_id].task_id, details=details({"done": n * 10}))
        for n, run_id in enumerate(runs)
    ]
    ids = [t.task_id for t in tasks.values()]
    stream.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat(task_ids=ids, progress=progress)))
    for n, run_id in enumerate(runs):
        wanted = {"done": n * 10}
        assert_eventually(lambda r=run_id, w=wanted: running_details(server, r) == w)  # type: ignore[misc]

    # One `details` for several tasks is ambiguous: the stream ends naming the field.
    beat = wpb.Heartbeat(task_ids=ids, details=details({"done": 99}))
    stream.send(wpb.WorkerMessage(heartbeat=beat))
    error = stream.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "heartbeat.details" in (error.details() or "")
    assert running_details(server, runs[1]) in (None, {"done": 10})
