"""Results kept until the control plane acknowledges them."""

from __future__ import annotations

import asyncio

from surefoot.v1 import worker_service_pb2 as pb


class UnackedResults:
    """Complete, Fail and HandBack messages sent (or to send) but not yet acknowledged.

    A result is durable only once the control plane's Ack names its task. Until then it must
    survive a broken stream, so every reconnect resends all of them, on a stream whose Hello
    names the earlier one (the control plane moves its leases there, or the result is
    refused); a result the control plane refuses is forgotten like an acknowledged one.
    Results are keyed by task id and attempt because a task whose lease expired can come back
    as a new attempt while the old one still runs; Ack names task ids only and clears both.
    """

    def __init__(self) -> None:
        self._by_task: dict[str, dict[int, pb.WorkerMessage]] = {}
        self._empty = asyncio.Event()
        self._empty.set()

    def __len__(self) -> int:
        return sum(len(attempts) for attempts in self._by_task.values())

    def add(self, task_id: str, attempt: int, message: pb.WorkerMessage) -> None:
        """Keep a result until its task is acknowledged."""
        self._by_task.setdefault(task_id, {})[attempt] = message
        self._empty.clear()

    def contains(self, task_id: str, attempt: int) -> bool:
        """Whether a result for this attempt is waiting for its Ack."""
        attempts = self._by_task.get(task_id)
        return attempts is not None and attempt in attempts

    def acknowledge(self, task_ids: list[str]) -> None:
        """Forget the results of these tasks; unknown ids (already acked) are ignored."""
        for task_id in task_ids:
            self._by_task.pop(task_id, None)
        if not self._by_task:
            self._empty.set()

    def pending(self) -> list[pb.WorkerMessage]:
        """Every unacknowledged result, oldest task first."""
        return [message for attempts in self._by_task.values() for message in attempts.values()]

    async def wait_empty(self) -> None:
        """Return once every result has been acknowledged."""
        await self._empty.wait()
