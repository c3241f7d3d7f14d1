"""Connected worker streams as the committer sees them.

A session's credit window and outstanding tasks are touched only by the committer thread;
the stream's coroutine only reads messages from `outbound`, which the committer fills through
the event loop (`call_soon_threadsafe`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from surefoot.v1 import worker_service_pb2 as wpb

# Cancelled tasks a session remembers, to acknowledge their late results.
MAX_REMEMBERED_CANCELS = 10_000


@dataclass(eq=False)
class WorkerSession:
    id: str
    namespace: str
    worker_id: str
    # (step type, version) pairs the worker implements.
    implements: frozenset[tuple[str, str]]
    loop: asyncio.AbstractEventLoop
    outbound: asyncio.Queue[wpb.ServerMessage | None]
    window: int = 0
    # The principal of the stream's credential, for the log lines about it.
    principal: str = ""
    # Tasks sent and not yet finished, with the time each was leased: a result from this
    # session then needs no read of its task row to record when the attempt started. Also
    # the lease binding: only a task listed here may be reported on this stream.
    outstanding: dict[str, float] = field(default_factory=dict)
    # Tasks taken over from an earlier stream (Hello.resume_session_ids), with the worker id
    # their lease was given to: history credits the attempt to the worker that ran it.
    resumed: dict[str, str] = field(default_factory=dict)
    # Results and heartbeats refused on this stream (not its lease): a forged or confused
    # worker shows here and in the log line of the stream's end.
    refused: int = 0
    # Refusals not yet told to the worker: (task id, reason).
    refusals: list[tuple[str, str]] = field(default_factory=list)
    # Tasks this stream was told to stop (Cancel), with the reason: they no longer count
    # against the window from the moment the Cancel is sent, and a late result for one is
    # acknowledged and ignored (the attempt is over; nothing of it is written).
    cancelled: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    closed: bool = False
    # Epoch seconds of the latest message the worker sent (0: none since the Hello). Set by
    # the stream's reader, written to `worker_sessions` with the periodic confirmation.
    heard_at: float = 0.0

    @property
    def free(self) -> int:
        if self.draining or self.closed:
            return 0
        return max(0, self.window - len(self.outstanding))

    @property
    def step_types(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.implements)

    def can_run(self, namespace: str, step_type: str, step_version: str) -> bool:
        if namespace != self.namespace:
            return False
        if step_version:
            return (step_type, step_version) in self.implements
        return step_type in self.step_types

    def send(self, message: wpb.ServerMessage | None) -> None:
        """Queue a message for the stream; safe to call from any thread."""
        self.loop.call_soon_threadsafe(self.outbound.put_nowait, message)

    def holds(self, task_id: str) -> bool:
        """Whether this stream holds the task's lease (committer thread only)."""
        return task_id in self.outstanding

    def cancel(self, task_id: str, reason: str) -> wpb.ServerMessage:
        """Stop counting the task against the window; the Cancel to send (committer thread)."""
        self.outstanding.pop(task_id, None)
        self.resumed.pop(task_id, None)
        self.cancelled[task_id] = reason
        if len(self.cancelled) > MAX_REMEMBERED_CANCELS:
            # A worker that never reports its cancelled tasks must not grow this forever:
            # the oldest one's late result is then refused instead of acknowledged.
            del self.cancelled[next(iter(self.cancelled))]
        return wpb.ServerMessage(cancel=wpb.Cancel(task_id=task_id, reason=reason))

    def refuse(self, task_ids: list[str], reason: str) -> None:
        """Count refused results or heartbeats; the worker is told once the batch commits
        (committer thread), after the Acks of that batch: a heartbeat refused because the
        task's result is in the same batch must not reach the worker before that Ack."""
        self.refused += len(task_ids)
        self.refusals.extend((task_id, reason) for task_id in task_ids)

    def tell_refusals(self) -> None:
        for task_id, reason in self.refusals:
            self.send(wpb.ServerMessage(refused=wpb.Refused(task_id=task_id, reason=reason)))
        self.refusals.clear()


class SessionRegistry:
    """Sessions of this process by id (committer thread only).

    Other threads read the streams of every control plane from `worker_sessions` instead
    (GetRun's blocked-on, ListWorkers): the same answer whichever control plane is asked.
    """

    def __init__(self) -> None:
        self.by_id: dict[str, WorkerSession] = {}
        # A Cancel freed a window slot since the handout last looked: it looks at once
        # rather than at its next poll.
        self.slot_freed = False

    def add(self, session: WorkerSession) -> None:
        self.by_id[session.id] = session

    def remove(self, session_id: str) -> WorkerSession | None:
        return self.by_id.pop(session_id, None)

    def with_credit(self) -> list[WorkerSession]:
        return [s for s in self.by_id.values() if s.free > 0]

    def holder_of(self, task_id: str) -> WorkerSession | None:
        for session in self.by_id.values():
            if task_id in session.outstanding:
                return session
        return None
