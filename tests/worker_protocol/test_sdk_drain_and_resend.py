"""Issue 15, item 4: what the Python SDK does on Drain and after a reconnect, against a
scripted control plane (an in-process WorkerService that records every message).

On Drain the worker says Draining, finishes the step it runs and sends its result, and
reconnects; the next stream's Hello names the earlier session, grants the window again and
resends every result the earlier stream never acknowledged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker import StepContext, Worker, step

RELEASE = asyncio.Event()


@step("drained-step", idempotency="key")
async def drained_step(ctx: StepContext, value: Any) -> Any:
    await RELEASE.wait()
    return {"echo": value}


class ScriptedPlane(worker_service_pb2_grpc.WorkerServiceServicer):
    """Stream 1: Welcome, one task, then Drain once the worker runs it; never acknowledges.
    Stream 2: Welcome, then acknowledges whatever result comes."""

    def __init__(self) -> None:
        self.streams: list[list[wpb.WorkerMessage]] = []
        self.second_result = asyncio.Event()

    async def Connect(
        self, request_iterator: AsyncIterator[wpb.WorkerMessage], context: Any
    ) -> AsyncIterator[wpb.ServerMessage]:
        seen: list[wpb.WorkerMessage] = []
        self.streams.append(seen)
        number = len(self.streams)
        incoming: asyncio.Queue[wpb.WorkerMessage | None] = asyncio.Queue()

        async def read() -> None:
            async for message in request_iterator:
                seen.append(message)
                await incoming.put(message)
            await incoming.put(None)

        reader = asyncio.create_task(read())
        yield wpb.ServerMessage(
            welcome=wpb.Welcome(
                session_id=f"session-{number}", lease_seconds=60, heartbeat_interval_seconds=20
            )
        )
        if number == 1:
            task = wpb.Task(
                task_id="run-1:only:1",
                run_id="run-1",
                node_id="only",
                step_type="drained-step",
                step_version="1",
                attempt=1,
                idempotency_key="run-1:only",
                input=common_pb2.Payload(encoding="json/plain", data=b'"hello"'),
            )
            yield wpb.ServerMessage(tasks=wpb.TaskBatch(tasks=[task]))
            yield wpb.ServerMessage(drain=wpb.Drain(reason="control plane shutting down"))
            # The step finishes only once the Drain is in: its result comes after Draining.
            while (message := await incoming.get()) is not None:
                if message.WhichOneof("message") == "draining":
                    RELEASE.set()
            await reader
            return
        while (message := await incoming.get()) is not None:
            results = _results(message)
            if results:
                self.second_result.set()
                yield wpb.ServerMessage(ack=wpb.Ack(task_ids=[r.task_id for r in results]))
        await reader


def _results(message: wpb.WorkerMessage) -> list[wpb.Complete]:
    kind = message.WhichOneof("message")
    if kind == "complete":
        return [message.complete]
    if kind == "results":
        return list(message.results.completes)
    return []


def test_on_drain_the_sdk_says_draining_finishes_and_resends_unacknowledged_results() -> None:
    async def scenario() -> ScriptedPlane:
        RELEASE.clear()
        plane = ScriptedPlane()
        server = grpc.aio.server()
        worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(plane, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        worker = Worker(
            f"127.0.0.1:{port}",
            [drained_step],
            concurrency=2,
            worker_id="drained-worker",
            max_reconnect_delay=0.2,
        )
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(plane.second_result.wait(), 30)
        finally:
            await worker.shutdown()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await server.stop(0)
        return plane

    plane = asyncio.run(scenario())
    first, second = plane.streams[0], plane.streams[1]
    kinds = [m.WhichOneof("message") for m in first]
    assert kinds[:2] == ["hello", "credit"] and first[1].credit.n == 2
    # Draining answers the Drain, before the step's result.
    assert "draining" in kinds
    completes = [r for m in first for r in _results(m)]
    assert kinds.index("draining") < next(i for i, m in enumerate(first) if _results(m)), kinds
    assert [(c.task_id, c.attempt) for c in completes] == [("run-1:only:1", 1)]
    assert json.loads(completes[0].output.data) == {"echo": "hello"}

    # The next stream resumes the first session and resends the unacknowledged result.
    assert second[0].WhichOneof("message") == "hello"
    assert list(second[0].hello.resume_session_ids) == ["session-1"]
    assert second[1].WhichOneof("message") == "credit" and second[1].credit.n == 2
    resent = [r for m in second for r in _results(m)]
    assert [(c.task_id, c.attempt) for c in resent] == [("run-1:only:1", 1)]
