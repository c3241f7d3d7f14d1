"""Issue 15, item 4, the server's side: a control plane that stops sends each worker a Drain,
hands that stream no task after it, and still takes the results of the tasks it sent before.

Runs keep being started while the control plane stops, so that a batch claiming tasks for the
stream is likely in flight when the Drain is decided."""

from __future__ import annotations

import signal
import threading

import grpc
from surefoot.v1 import workflow_service_pb2_grpc

from tests.support.processes import ControlPlane
from tests.support.raw_worker import WAIT_SECONDS
from tests.support.runs import start_run
from tests.worker_protocol.contract import WORKFLOW, open_stream, register_one_step


def test_a_stopping_control_plane_sends_no_task_after_its_drain_and_takes_results_before_it(
    server: ControlPlane,
) -> None:
    register_one_step(server)
    stream = open_stream(server, "drained", credit=10_000)
    stopping = threading.Event()
    started = threading.Event()

    def keep_starting() -> None:
        # Its own channel: the control plane refusing calls ends this thread, not the stream.
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = workflow_service_pb2_grpc.WorkflowServiceStub(channel)
            while True:
                try:
                    start_run(stub, WORKFLOW, {})
                except grpc.RpcError:
                    if stopping.is_set():
                        return
                    raise
                started.set()

    # Several at once, so that committer batches follow each other closely.
    starters = [
        threading.Thread(target=keep_starting, name=f"starter-{n}", daemon=True) for n in range(8)
    ]
    for starter in starters:
        starter.start()
    first = stream.next_of("tasks").tasks.tasks[0]
    assert started.wait(WAIT_SECONDS)
    assert server.process is not None
    stopping.set()
    server.process.send_signal(signal.SIGTERM)

    drain = stream.next_of("drain").drain
    assert drain.reason == "control plane shutting down"
    # A task sent before the Drain is finished and its result taken on the same stream.
    stream.complete(first.task_id, first.attempt, {"done": True})
    ack = stream.next_of("ack").ack
    assert list(ack.task_ids) == [first.task_id]
    for starter in starters:
        starter.join(WAIT_SECONDS)
    stream.close()
    stream.read_to_end()

    # Read to its end, the stream shows every message the control plane sent, in order.
    kinds = [m.WhichOneof("message") for m in stream.received]
    drained_at = kinds.index("drain")
    assert "tasks" not in kinds[drained_at:], kinds[drained_at:]
    assert kinds.count("drain") == 1
