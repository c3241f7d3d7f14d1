"""A WorkerService.Connect stream driven message by message, to do what the SDK never does.

The SDK always reports on the stream it received a task on and never speaks for an attempt
it no longer holds; a test of law 3 (a late result is recorded and ignored) needs exactly
that, and a test of the Hello checks needs a Hello the SDK refuses to send.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb

WAIT_SECONDS = 30.0
_END = object()


def declaration(
    name: str,
    idempotency: common_pb2.Idempotency.ValueType = common_pb2.IDEMPOTENCY_KEY,
    version: str = "1",
) -> common_pb2.StepTypeDeclaration:
    return common_pb2.StepTypeDeclaration(name=name, version=version, idempotency=idempotency)


class RawWorkerStream:
    """One Connect stream: sends Hello at once, then whatever the test sends.

    Args:
        channel: A channel to the control plane.
        worker_id: The worker id to announce.
        step_types: The declarations of the Hello.
        credit: Credit granted right after the Hello (0: none, the stream receives no task).
        token: A bearer token sent with the stream ("" for none).
        namespace: The Hello's namespace ("" lets the server choose).
        resume: The Hello's resume_session_ids.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        worker_id: str,
        step_types: Sequence[common_pb2.StepTypeDeclaration],
        credit: int = 0,
        *,
        token: str = "",
        namespace: str = "",
        resume: Sequence[str] = (),
    ) -> None:
        self.worker_id = worker_id
        self._outbound: queue.Queue[wpb.WorkerMessage | None] = queue.Queue()
        self._inbound: queue.Queue[Any] = queue.Queue()
        self.received: list[wpb.ServerMessage] = []
        self.error: grpc.RpcError | None = None
        self._ended = threading.Event()
        hello = wpb.Hello(
            worker_id=worker_id,
            step_types=step_types,
            namespace=namespace,
            resume_session_ids=resume,
        )
        self.send(wpb.WorkerMessage(hello=hello))
        if credit:
            self.send(wpb.WorkerMessage(credit=wpb.Credit(n=credit)))
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._call = stub.Connect(self._requests(), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name=f"raw-{worker_id}", daemon=True)
        self._reader.start()

    def _requests(self) -> Iterator[wpb.WorkerMessage]:
        while (message := self._outbound.get()) is not None:
            yield message

    def _read(self) -> None:
        try:
            for message in self._call:
                self._inbound.put(message)
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self._ended.set()
            self._inbound.put(_END)

    def send(self, message: wpb.WorkerMessage) -> None:
        self._outbound.put(message)

    def complete(self, task_id: str, attempt: int, output: Any) -> None:
        payload = common_pb2.Payload(encoding="json/plain", data=json.dumps(output).encode())
        self.send(
            wpb.WorkerMessage(
                complete=wpb.Complete(task_id=task_id, attempt=attempt, output=payload)
            )
        )

    def heartbeat(self, *task_ids: str) -> None:
        self.send(wpb.WorkerMessage(heartbeat=wpb.Heartbeat(task_ids=task_ids)))

    def next_message(self, timeout: float = WAIT_SECONDS) -> wpb.ServerMessage:
        """The next message from the control plane; fails if the stream ends or stays silent."""
        try:
            message = self._inbound.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.worker_id}: no message within {timeout:.0f} s "
                f"(received so far: {self.received})"
            ) from None
        if message is _END:
            self._inbound.put(_END)
            raise AssertionError(f"{self.worker_id}: the stream ended ({self.error!r})")
        self.received.append(message)
        return message

    def next_of(self, kind: str, timeout: float = WAIT_SECONDS) -> wpb.ServerMessage:
        """The next message of one kind ("welcome", "tasks", "ack", "cancel", "drain",
        "refused")."""
        while True:
            message = self.next_message(timeout)
            if message.WhichOneof("message") == kind:
                return message

    def next_task(self, timeout: float = WAIT_SECONDS) -> wpb.Task:
        batch = self.next_of("tasks", timeout).tasks
        assert len(batch.tasks) == 1, f"expected one task (credit 1), got {batch}"
        return batch.tasks[0]

    def read_to_end(self, timeout: float = WAIT_SECONDS) -> list[wpb.ServerMessage]:
        """Every message still to come, once the stream has ended (see `received`)."""
        self.wait_ended(timeout)
        rest = []
        while (message := self._inbound.get()) is not _END:
            rest.append(message)
        self._inbound.put(_END)
        self.received.extend(rest)
        return rest

    def close(self) -> None:
        """Ends the worker's side of the stream, as a worker process that goes away does."""
        self._outbound.put(None)

    def wait_ended(self, timeout: float = WAIT_SECONDS) -> grpc.RpcError | None:
        """Waits until the control plane ended the stream; its error, None if it ended OK."""
        assert self._ended.wait(timeout), f"{self.worker_id}: the stream is still open"
        return self.error
