"""Operations on waiting runs inside a committer transaction: timers that came due,
approval decisions, events sent, and events kept for runs that reach their wait later."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from controlplane.dispatch import operations as ops
from controlplane.engine.events import ApprovalDecided, EventReceived, RunEvent, TimerFired
from controlplane.engine.machine import NotWaiting
from controlplane.store.codec import dump_json, load_json, to_datetime, to_epoch
from controlplane.store.run_batch import RunBatch
from controlplane.store.schema import approvals, event_waits, events, timers

Apply = Callable[[RunBatch, str, RunEvent], None]

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
        apply(batch, run_id, TimerFired(node_id, kind, batch.now))


def approval_run(approval_id: str) -> str:
    return approval_id.split(":", 1)[0]


def decide(batch: RunBatch, op: ops.DecideApproval, apply: Apply) -> dict[str, Any]:
    """Apply a decision; returns the approval row as it will be after the commit."""
    row = batch.connection.execute(
        select(approvals).where(
            approvals.c.id == op.approval_id, approvals.c.namespace == op.namespace
        )
    ).first()
    if row is None or approval_run(op.approval_id) not in batch.runs:
        raise ops.NotFound(f"approval {op.approval_id} not found in namespace {op.namespace!r}")
    pending = batch.waits.approval_updates.get(op.approval_id, {})
    status = pending.get("status", row.status)
    if status != "PENDING":
        by = pending.get("decided_by", row.decided_by) or "the system"
        raise ops.Conflict(f"approval {op.approval_id} is already {status} (by {by})")
    approvers = json.loads(pending.get("approvers", row.approvers))
    if approvers and op.principal not in approvers and not set(op.groups) & set(approvers):
        raise ops.PermissionDenied(
            f"{op.principal} may not decide approval {op.approval_id} "
            f"(approvers: {', '.join(approvers)})"
        )
    event = ApprovalDecided(row.node_id, op.approve, op.principal, op.comment, batch.now)
    try:
        apply(batch, row.run_id, event)
    except NotWaiting as exc:
        raise ops.Conflict(str(exc)) from exc
    return dict(row._mapping) | batch.waits.approval_updates.get(op.approval_id, {})


def waiters(connection: Connection, op: ops.SendEvent) -> list[tuple[str, str]]:
    query = select(event_waits.c.run_id, event_waits.c.node_id).where(
        event_waits.c.namespace == op.namespace,
        event_waits.c.event_name == op.event_name,
        event_waits.c.correlation_key == op.correlation_key,
    )
    return [(r.run_id, r.node_id) for r in connection.execute(query)]


def send_event(
    batch: RunBatch, op: ops.SendEvent, found: list[tuple[str, str]], apply: Apply
) -> ops.SentEvent:
    """Deliver to every run waiting on (name, key); keep the event when none is."""
    c = batch.connection
    event_id = op.event_id or uuid.uuid4().hex
    if op.event_id:
        known = c.execute(
            select(events.c.delivered_to).where(
                events.c.namespace == op.namespace, events.c.id == op.event_id
            )
        ).first()
        if known is not None:
            earlier: list[str] = load_json(known.delivered_to) or []
            return ops.SentEvent(event_id, earlier, not earlier)
    delivered: list[str] = []
    for run_id, node_id in found:
        if run_id not in batch.runs:
            continue
        try:
            apply(
                batch,
                run_id,
                EventReceived(
                    node_id, op.event_name, op.correlation_key, op.payload, event_id, batch.now
                ),
            )
        except NotWaiting:
            continue  # the wait ended (timeout, cancel) since it was found
        delivered.append(run_id)
    c.execute(
        events.insert().values(
            namespace=op.namespace,
            id=event_id,
            event_name=op.event_name,
            correlation_key=op.correlation_key,
            payload=dump_json(op.payload),
            created_at=to_datetime(batch.now),
            expires_at=to_datetime(batch.now) + KEEP_EVENTS,
            delivered_to=dump_json(delivered) if delivered else None,
        )
    )
    return ops.SentEvent(event_id, delivered, not delivered)


def match_kept_events(batch: RunBatch, apply: Apply) -> None:
    """Give each wait opened in this batch the oldest kept event it matches, if any."""
    while batch.waits.opened:
        opened, batch.waits.opened = batch.waits.opened, []
        for state, wait in opened:
            oldest = batch.now - wait.retention_seconds
            row = batch.connection.execute(
                select(events.c.id, events.c.payload)
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
            )
            apply(batch, state.id, event)


def monotonic_deadline(epoch: float) -> float:
    """A wall-clock due time as a time.monotonic() value, for the committer's sleep."""
    return time.monotonic() + max(0.0, epoch - time.time())
