"""Handing tasks to worker sessions, and telling everyone what a commit did.

`Handout` leases a batch's new tasks (and ready ones from the database) to sessions with
free credit inside the transaction; `deliver` sends the results, tasks, acks and cancels
once it has committed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import telemetry
from controlplane.dispatch import claims
from controlplane.dispatch.sessions import SessionRegistry
from controlplane.dispatch.tasks import task_message
from controlplane.store.codec import to_datetime, to_epoch
from controlplane.store.run_batch import RunBatch

if TYPE_CHECKING:
    from controlplane.dispatch.operations.base import Operation


@dataclass
class Deliveries:
    """What to tell whom once the transaction has committed."""

    results: list[tuple[Operation, Any]] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cancels: list[str] = field(default_factory=list)
    spans: list[telemetry.AttemptSpan] = field(default_factory=list)
    # Runs whose state (and history) the transaction changed.
    changed_runs: list[str] = field(default_factory=list)


class Handout:
    """Leases tasks to this process's sessions (committer thread only).

    Tasks a batch schedules go to sessions with free credit at once; the database is asked
    for ready tasks only when one may be there: a session gained credit, another control
    plane said so, a task found no session, or every `poll_interval` (retry timers).
    """

    def __init__(self, sessions: SessionRegistry, poll_interval: float, lease_seconds: float):
        self._sessions = sessions
        self._poll_interval = poll_interval
        self._lease = lease_seconds
        self.maybe_ready = True
        self.next_poll = 0.0
        self._rotation = 0

    def poll_due(self, now: float) -> bool:
        """Whether an idle committer should look for tasks (`now` is time.monotonic())."""
        return now >= self.next_poll and bool(self._sessions.with_credit())

    def idle(self, now: float) -> None:
        self.next_poll = max(self.next_poll, now + self._poll_interval)

    def assign(self, batch: RunBatch, out: Deliveries) -> None:
        sessions = self._sessions.with_credit()
        if not sessions:
            self.next_poll = time.monotonic() + self._poll_interval
            return
        now = batch.now
        self._rotation = (self._rotation + 1) % len(sessions)
        sessions = sessions[self._rotation :] + sessions[: self._rotation]
        free = {s.id: s.free for s in sessions}
        lease_until = to_datetime(now + self._lease)
        leased_at = to_datetime(now)
        unassigned = False
        for task in batch.new_tasks.values():
            # Compared as the datetimes written: a float's round trip through a datetime may
            # land a microsecond later, which must not make a task due now look like a retry.
            if task["available_at"] > leased_at:
                continue
            session = next(
                (
                    s
                    for s in sessions
                    if free[s.id] > 0
                    and s.can_run(task["namespace"], task["step_type"], task["step_version"])
                ),
                None,
            )
            if session is None:
                unassigned = True
                continue
            free[session.id] -= 1
            task.update(
                status="leased",
                session_id=session.id,
                worker_id=session.worker_id,
                leased_at=leased_at,
                lease_expires_at=lease_until,
            )
            out.tasks[session.id].append(task)
        poll_due = time.monotonic() >= self.next_poll
        if not (self.maybe_ready or unassigned or poll_due):
            return
        exhausted = True
        for session in sessions:
            if free[session.id] <= 0:
                continue
            claimed = claims.claim_ready_tasks(
                batch.connection, session, free[session.id], leased_at, lease_until
            )
            out.tasks[session.id].extend(claimed)
            if len(claimed) == free[session.id]:
                exhausted = False
        self.maybe_ready = not exhausted
        self.next_poll = time.monotonic() + self._poll_interval


def deliver(out: Deliveries, sessions: SessionRegistry) -> None:
    """Answer the callers and message the workers; the transaction has committed."""
    for operation, result in out.results:
        if isinstance(result, Exception):
            resolve(operation, exc=result)
        else:
            resolve(operation, result=result)
    for session_id, rows in out.tasks.items():
        session = sessions.by_id.get(session_id)
        if session is None or not rows:
            continue  # closed meanwhile: its leases are released by CloseSession
        session.outstanding.update((row["id"], to_epoch(row["leased_at"])) for row in rows)
        batch = wpb.TaskBatch(tasks=[task_message(row) for row in rows])
        session.send(wpb.ServerMessage(tasks=batch))
    for session_id, task_ids in out.acks.items():
        session = sessions.by_id.get(session_id)
        if session is not None:
            session.send(wpb.ServerMessage(ack=wpb.Ack(task_ids=task_ids)))
    for task_id in out.cancels:
        holder = sessions.holder_of(task_id)
        if holder is not None:
            holder.send(wpb.ServerMessage(cancel=wpb.Cancel(task_id=task_id)))
    for session in sessions.by_id.values():
        if session.refusals:
            session.tell_refusals()
    if out.spans:
        telemetry.emit_attempts(out.spans)


def resolve(operation: Operation, *, result: Any = None, exc: BaseException | None = None) -> None:
    """Settle the operation's future (if anyone waits for it) on its event loop."""
    future = operation.future
    if future is None:
        return

    def settle() -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    future.get_loop().call_soon_threadsafe(settle)
