"""Handing tasks to worker sessions, and telling everyone what a commit did.

`Handout` leases a batch's new tasks (and ready ones from the database) to sessions with
free credit inside the transaction; `deliver` sends the results, tasks, acks and cancels
once it has committed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import telemetry
from controlplane.dispatch import claims
from controlplane.dispatch.loop_calls import LoopCalls
from controlplane.dispatch.run_watches import RunNews
from controlplane.dispatch.sessions import SessionRegistry
from controlplane.dispatch.tasks import task_message
from controlplane.store.codec import to_datetime, to_epoch
from controlplane.store.run_batch import RunBatch

if TYPE_CHECKING:
    from controlplane.dispatch.operations.base import Operation

# Steps handed back whose next attempt the handout remembers to send elsewhere.
MAX_AVOIDED = 10_000


@dataclass
class Deliveries:
    """What to tell whom once the transaction has committed."""

    results: list[tuple[Operation, Any]] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cancels: list[str] = field(default_factory=list)
    # Why each cancelled attempt was cancelled (Cancel.reason), by task id.
    cancel_reasons: dict[str, str] = field(default_factory=dict)
    spans: list[telemetry.TraceSpan] = field(default_factory=list)
    # What the transaction did to runs that WatchRun streams follow.
    run_news: dict[str, RunNews] = field(default_factory=dict)
    # Drains to send (session id -> reason), after the batch's tasks: a task this process
    # handed out is never sent after its Drain.
    drains: dict[str, str] = field(default_factory=dict)


class Handout:
    """Leases tasks to this process's sessions (committer thread only).

    Tasks a batch schedules go to sessions with free credit at once, in the transaction that
    schedules them, except those of a paused run, which are written held ('paused') for
    ResumeRun to release. The database is asked for ready tasks only when one may be there for a
    session with free credit: a session connected or gained credit while tasks waited,
    another control plane said so, a task found no session, a retry this process knows of
    came due, or, as a safety net only, every `poll_interval`.
    """

    def __init__(self, sessions: SessionRegistry, poll_interval: float, lease_seconds: float):
        self._sessions = sessions
        self._poll_interval = poll_interval
        self._lease = lease_seconds
        self.maybe_ready = True
        self.next_poll = 0.0
        # When the earliest ready task not yet due (a retry's backoff) becomes due, as far as
        # this process knows (epoch seconds): the committer wakes for it instead of a poll.
        self.due_at: float | None = None
        self._rotation = 0
        # The session that handed each step back ("<run>:<node>"), which its next attempt
        # goes to only when no other capable session has free credit.
        self._avoid: dict[str, str] = {}

    def avoid(self, task_id: str, session_id: str) -> None:
        """The step of `task_id` was handed back by `session_id` (committer thread)."""
        self._avoid[task_id.rpartition(":")[0]] = session_id
        if len(self._avoid) > MAX_AVOIDED:
            # A step handed back and never scheduled again (idempotency none) stays here.
            del self._avoid[next(iter(self._avoid))]

    def poll_due(self, now: float) -> bool:
        """Whether an idle committer should look for tasks (`now` is time.monotonic())."""
        if not self._sessions.with_credit():
            return False
        if self._sessions.slot_freed:
            self._sessions.slot_freed = False
            self.maybe_ready = True
            return True
        return now >= self.next_poll or (self.due_at is not None and self.due_at <= time.time())

    def next_look(self) -> float:
        """When the committer should next look for tasks (time.monotonic())."""
        if self._sessions.slot_freed:
            return time.monotonic()
        if self.due_at is None:
            return self.next_poll
        return min(self.next_poll, time.monotonic() + max(0.0, self.due_at - time.time()))

    def idle(self, now: float) -> None:
        self.next_poll = max(self.next_poll, now + self._poll_interval)

    def assign(self, batch: RunBatch, out: Deliveries) -> None:
        if batch.trace_spans:
            # Every change of the batch is recorded by now: the run and wait spans it ended.
            out.spans.extend(batch.trace_spans)
        now = batch.now
        if self.due_at is not None and self.due_at <= now:
            self.due_at = None
            self.maybe_ready = True
        leased_at = to_datetime(now)
        due = []
        for task in batch.new_tasks.values():
            loaded = batch.runs.get(task["run_id"])
            if loaded is not None and loaded.state.paused is not None:
                # Written held: ResumeRun makes it ready (claims.release_run_tasks).
                task["status"] = claims.PAUSED
                continue
            # Compared as the datetimes written: a float's round trip through a datetime may
            # land a microsecond later, which must not make a task due now look like a retry.
            if task["available_at"] > leased_at:
                self._remember_due(to_epoch(task["available_at"]))
            else:
                due.append(task)
        sessions = self._sessions.with_credit()
        if not sessions:
            # Every slot is taken: the tasks wait in the database for the next free one.
            self.maybe_ready = self.maybe_ready or bool(due)
            self.next_poll = time.monotonic() + self._poll_interval
            return
        self._rotation = (self._rotation + 1) % len(sessions)
        sessions = sessions[self._rotation :] + sessions[: self._rotation]
        free = {s.id: s.free for s in sessions}
        lease_until = to_datetime(now + self._lease)
        unassigned = False
        for task in due:
            avoided = self._avoid.pop(task["id"].rpartition(":")[0], None) if self._avoid else None
            capable = [
                s
                for s in sessions
                if free[s.id] > 0
                and s.can_run(task["namespace"], task["step_type"], task["step_version"])
            ]
            session = next((s for s in capable if s.id != avoided), None) or next(
                iter(capable), None
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
                # Its slots went to this batch's tasks: more may wait for it.
                exhausted = False
                continue
            claimed = claims.claim_ready_tasks(
                batch.connection, session, free[session.id], leased_at, lease_until
            )
            out.tasks[session.id].extend(claimed)
            if len(claimed) == free[session.id]:
                exhausted = False
        self.maybe_ready = not exhausted
        if exhausted:
            # What is left is not due yet (or not for these workers): wake when it is.
            self._remember_due(claims.earliest_pending(batch.connection, leased_at))
        self.next_poll = time.monotonic() + self._poll_interval

    def _remember_due(self, at: float | None) -> None:
        if at is not None and (self.due_at is None or at < self.due_at):
            self.due_at = at


def deliver(out: Deliveries, sessions: SessionRegistry, calls: LoopCalls) -> None:
    """Answer the callers and message the workers; the transaction has committed. What runs
    on an event loop is gathered in `calls`, which the caller flushes."""
    for operation, result in out.results:
        future = operation.future
        if future is None:
            continue
        if isinstance(result, Exception):
            calls.add(future.get_loop(), _settler(operation, None, result))
        else:
            calls.add(future.get_loop(), _settler(operation, result, None))
    for session_id, rows in out.tasks.items():
        session = sessions.by_id.get(session_id)
        if session is None or not rows:
            continue  # closed meanwhile: its leases are released by CloseSession
        session.outstanding.update((row["id"], to_epoch(row["leased_at"])) for row in rows)
        batch = wpb.TaskBatch(tasks=[task_message(row) for row in rows])
        calls.add(session.loop, session.outbound.put_nowait, wpb.ServerMessage(tasks=batch))
    for session_id, task_ids in out.acks.items():
        session = sessions.by_id.get(session_id)
        if session is not None:
            message = wpb.ServerMessage(ack=wpb.Ack(task_ids=task_ids))
            calls.add(session.loop, session.outbound.put_nowait, message)
    for task_id in out.cancels:
        holder = sessions.holder_of(task_id)
        if holder is not None:
            # The slot is free once the Cancel is sent, whatever the worker does with it: a
            # worker that just stops the task must not lose a slot for good.
            reason = out.cancel_reasons.get(task_id) or "the attempt was cancelled"
            message = holder.cancel(task_id, reason)
            calls.add(holder.loop, holder.outbound.put_nowait, message)
            sessions.slot_freed = True
    for session_id, reason in out.drains.items():
        session = sessions.by_id.get(session_id)
        if session is not None:
            message = wpb.ServerMessage(drain=wpb.Drain(reason=reason))
            calls.add(session.loop, session.outbound.put_nowait, message)
    for session in sessions.by_id.values():
        if session.refusals:
            session.tell_refusals()
    if out.spans:
        telemetry.emit_attempts(out.spans)


def resolve(operation: Operation, *, result: Any = None, exc: BaseException | None = None) -> None:
    """Settle the operation's future (if anyone waits for it) on its event loop."""
    future = operation.future
    if future is not None:
        future.get_loop().call_soon_threadsafe(_settler(operation, result, exc))


def _settler(operation: Operation, result: Any, exc: BaseException | None) -> Callable[[], None]:
    """What settles `operation`'s future, to run on its event loop."""
    future = operation.future
    assert future is not None

    def settle() -> None:
        if future.done():
            operation.abandoned()  # cancelled: what was kept for the caller goes
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    return settle
