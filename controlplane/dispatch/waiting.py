"""Waiting runs inside a committer transaction: timers that came due, and events kept for
runs that reach their wait later. Approval decisions and events sent are operations."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection, and_, func, or_, select, update

from controlplane.engine.events import EventReceived, RunEvent, TimerFired
from controlplane.store.codec import dump_json, load_json, to_datetime, to_epoch
from controlplane.store.run_batch import RunBatch
from controlplane.store.schema import event_waits, events, timers

Apply = Callable[[str, RunEvent], None]

TIMER_LIMIT = 500
# How long an event nobody waits for is kept (a wait node declares how old an event it takes).
KEEP_EVENTS = timedelta(days=7)


def due_timers(connection: Connection, now: float) -> list[tuple[str, str, str]]:
    query = (
        select(timers.c.run_id, timers.c.node_id, timers.c.kind)
        .where(timers.c.due_at <= to_datetime(now))
        .order_by(timers.c.due_at)
        .limit(TIMER_LIMIT)
    )
    return [(r.run_id, r.node_id, r.kind) for r in connection.execute(query)]


def purge_expired_events(connection: Connection, now: float) -> None:
    """Forget events past their keeping time (delivered or not)."""
    connection.execute(events.delete().where(events.c.expires_at < to_datetime(now)))


def earliest_timer(connection: Connection) -> float | None:
    found = connection.execute(select(func.min(timers.c.due_at))).scalar()
    return to_epoch(found) if found is not None else None


def fire_timers(batch: RunBatch, due: list[tuple[str, str, str]], apply: Apply) -> None:
    """Fire timers whose runs this batch locked; a timer deleted meanwhile is skipped."""
    if not due:
        return
    keys = [
        and_(timers.c.run_id == r, timers.c.node_id == n, timers.c.kind == k) for r, n, k in due
    ]
    still = {
        (row.run_id, row.node_id, row.kind)
        for row in batch.connection.execute(
            select(timers.c.run_id, timers.c.node_id, timers.c.kind).where(or_(*keys))
        )
    }
    for run_id, node_id, kind in due:
        if (run_id, node_id, kind) not in still or run_id not in batch.runs:
            continue
        batch.waits.timer_deletes.add((run_id, node_id, kind))
        apply(run_id, TimerFired(node_id, kind, batch.now))


def waiters(
    connection: Connection, namespace: str, event_name: str, correlation_key: str
) -> list[tuple[str, str]]:
    """(run id, node id) of the waits on (name, key) in a namespace."""
    query = select(event_waits.c.run_id, event_waits.c.node_id).where(
        event_waits.c.namespace == namespace,
        event_waits.c.event_name == event_name,
        event_waits.c.correlation_key == correlation_key,
    )
    return [(r.run_id, r.node_id) for r in connection.execute(query)]


def match_kept_events(batch: RunBatch, apply: Apply) -> None:
    """Give each wait opened in this batch the oldest kept event it matches, if any."""
    while batch.waits.opened:
        opened, batch.waits.opened = batch.waits.opened, []
        for state, wait in opened:
            oldest = batch.now - wait.retention_seconds
            row = batch.connection.execute(
                select(events.c.id, events.c.payload, events.c.sent_by)
                .where(
                    events.c.namespace == state.namespace,
                    events.c.event_name == wait.event_name,
                    events.c.correlation_key == wait.correlation_key,
                    events.c.delivered_to.is_(None),
                    events.c.created_at >= to_datetime(oldest),
                )
                .order_by(events.c.created_at)
                .limit(1)
            ).first()
            if row is None:
                continue
            taken = batch.connection.execute(
                update(events)
                .where(
                    events.c.namespace == state.namespace,
                    events.c.id == row.id,
                    events.c.delivered_to.is_(None),
                )
                .values(delivered_to=dump_json([state.id]))
            )
            if taken.rowcount != 1:
                continue  # another control plane consumed it first
            event = EventReceived(
                wait.node_id,
                wait.event_name,
                wait.correlation_key,
                load_json(row.payload),
                row.id,
                batch.now,
                # Its sender, not whoever's batch happened to find it.
                principal=row.sent_by,
            )
            apply(state.id, event)


def monotonic_deadline(epoch: float) -> float:
    """A wall-clock due time as a time.monotonic() value, for the committer's sleep."""
    return time.monotonic() + max(0.0, epoch - time.time())


class TimerWatch:
    """When the committer must next look for due timers (committer thread only)."""

    def __init__(self) -> None:
        # Earliest durable timer known (epoch seconds); refreshed from the database each reap.
        self.next: float | None = None

    def due(self, now: float) -> bool:
        return self.next is not None and self.next <= now

    def refresh(self, connection: Connection) -> None:
        self.next = earliest_timer(connection)

    def committed(self, written: float | None, fired: int, now: float) -> None:
        """After a commit: timers it wrote, and whether it fired as many as one look may."""
        if written is not None and (self.next is None or written < self.next):
            self.next = written
        if fired == TIMER_LIMIT:
            self.next = now  # more are due: look again at once
