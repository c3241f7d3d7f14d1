"""Taking back leases: expired ones (the worker stopped heartbeating), timed-out ones (a
handler past its node's timeout) and those of a worker whose stream closed.

The engine decides what follows a lost attempt; this module only finds the leases and
hands the engine an `AttemptLost` for each.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from controlplane.dispatch import claims, waiting
from controlplane.engine.events import AttemptLost
from controlplane.store import write_requests
from controlplane.store.codec import to_datetime, to_epoch

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction

REAP_LIMIT = 500
# Events past their keeping time are deleted this often (seconds).
PURGE_INTERVAL = 300.0


class Reaper:
    """When to look for lost leases and old events (committer thread only)."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self.next_reap = 0.0  # time.monotonic()
        self._next_purge = 0.0  # epoch seconds

    def due(self) -> bool:
        return time.monotonic() >= self.next_reap

    def expired(self, connection: Connection, now: float) -> list[tuple[str, str]]:
        """(task id, run id) of leases run out or timed out."""
        at = to_datetime(now)
        return claims.expired_leases(connection, at, REAP_LIMIT) + claims.timed_out_leases(
            connection, at
        )

    def tidy(self, connection: Connection, now: float) -> None:
        """Inside a reaping transaction, now and then: forget events past their keeping time
        and the answers kept for request ids past theirs."""
        if now >= self._next_purge:
            waiting.purge_expired_events(connection, now)
            write_requests.purge(connection, to_datetime(now))
            self._next_purge = now + PURGE_INTERVAL

    def reaped(self) -> None:
        """A reaping transaction committed."""
        self.next_reap = time.monotonic() + self._interval

    def postpone(self) -> None:
        """The database is back after an outage: reap no sooner than one interval from now.

        Workers went on heartbeating while their heartbeats could not be recorded; the first
        transactions record those kept meanwhile, and only then may a lease be judged lost.
        """
        self.next_reap = max(self.next_reap, time.monotonic() + self._interval)


def release(
    txn: Transaction, task_ids: list[str], reason: str, session_ids: list[str] | None = None
) -> None:
    """Take back leases whose worker is gone; the engine schedules the next attempt.

    With `session_ids`, the leases of those closed sessions; without, leases found expired,
    which a heartbeat committed meanwhile may have extended.
    """
    batch = txn.batch
    rows = batch.task_rows(task_ids, status="leased")
    now = to_datetime(batch.now)
    for task_id, row in rows.items():
        if session_ids is not None and row.session_id not in session_ids:
            continue
        why = reason
        if session_ids is None and claims.timed_out(row.leased_at, row.timeout_seconds, now):
            why = f"timed out: no result within {row.timeout_seconds} s"
        elif session_ids is None and row.lease_expires_at >= now:
            continue  # a heartbeat got there first
        if row.session_id in txn.sessions.by_id or (session_ids is None and row.session_id):
            # A live worker whose lease ran out is told to stop. Its window slot stays
            # taken until it reports the attempt, so `deliver` finds it as the holder. A
            # stream of another control plane is told through it (`notify_cancels`).
            batch.cancelled_tasks.append(task_id)
            batch.cancel_reasons[task_id] = why
        started = to_epoch(row.leased_at) if row.leased_at else None
        event = AttemptLost(row.node_id, row.attempt, why, batch.now, row.worker_id or "", started)
        if row.run_id in batch.runs:
            txn.attempt_ended(batch.runs[row.run_id], event, started)
            txn.transition(row.run_id, event)
