"""What the worker keeps per stream, and how results share its messages."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from surefoot.v1 import worker_service_pb2 as pb

from ._execution import AttemptKey

# How long a half-closed stream may take to end before the worker cancels it.
CLOSE_GRACE = 2.0


@dataclass(eq=False)
class Session:
    """One Connect stream, from Hello to its end."""

    # The single writer queue: every message for this stream goes through it, in order, to
    # the request iterator gRPC reads. None ends the iterator, which half-closes the stream.
    outbox: asyncio.Queue[pb.WorkerMessage | None] = field(default_factory=asyncio.Queue)
    call: Any = None  # grpc.aio.StreamStreamCall; its stub type is not generic at runtime
    welcomed: bool = False
    draining: bool = False  # the control plane sent Drain
    closing: bool = False
    call_cancelled: bool = False
    close_timer: asyncio.TimerHandle | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # Attempts still running from an earlier stream when this one began: its credit left
    # room for them, and each gives its slot back (Credit 1) when it ends.
    owed: set[AttemptKey] = field(default_factory=set)

    def send(self, message: pb.WorkerMessage) -> None:
        self.outbox.put_nowait(message)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def close(self) -> None:
        """Half-close the stream, and cancel it if the control plane does not end it."""
        if self.closing:
            return
        self.closing = True
        self.outbox.put_nowait(None)
        self.close_timer = asyncio.get_running_loop().call_later(CLOSE_GRACE, self._cancel)

    def _cancel(self) -> None:
        if self.call is not None and not self.call.done():
            self.call_cancelled = True
            self.call.cancel()

    def dispose(self) -> None:
        if self.close_timer is not None:
            self.close_timer.cancel()
        for task in list(self.background):
            task.cancel()
        self.outbox.put_nowait(None)


MAX_COALESCED = 256


def coalesce_results(
    messages: list[pb.WorkerMessage | None], max_bytes: int = 4 * 1024 * 1024 - 1024
) -> list[pb.WorkerMessage | None]:
    """Merge runs of adjacent Complete/Fail messages into Results, keeping the order; a
    Results message stays within `max_bytes` (the server refuses a larger message)."""
    merged: list[pb.WorkerMessage | None] = []
    batch: pb.Results | None = None
    size = 0
    for message in messages:
        kind = message.WhichOneof("message") if message is not None else None
        if kind in ("complete", "fail"):
            assert message is not None
            # A result's share of a Results message: itself plus a few bytes of framing.
            share = message.ByteSize() + 8
            if batch is not None and size + share > max_bytes:
                merged.append(results_message(batch))
                batch = None
            if batch is None:
                batch = pb.Results()
                size = 0
            size += share
            if kind == "complete":
                batch.completes.append(message.complete)
            else:
                batch.fails.append(message.fail)
            continue
        if batch is not None:
            merged.append(results_message(batch))
            batch = None
        merged.append(message)
    if batch is not None:
        merged.append(results_message(batch))
    return merged


def results_message(batch: pb.Results) -> pb.WorkerMessage:
    if len(batch.completes) + len(batch.fails) == 1:
        # A lone result keeps its own message kind, which every server version reads.
        if batch.completes:
            return pb.WorkerMessage(complete=batch.completes[0])
        return pb.WorkerMessage(fail=batch.fails[0])
    return pb.WorkerMessage(results=batch)
