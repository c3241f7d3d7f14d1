"""SQL for handing out tasks: claiming ready ones, finding expired and orphaned leases.

A task is 'ready' (claimable once due), 'leased' (held by a worker's stream) or 'paused'
(its run is paused: engine/pausing.py). Holding a paused run's tasks in a status of their
own, rather than joining every claim to `runs`, keeps the claim query and its partial index
as they are: a pause or a resume is one UPDATE of the run's few task rows, and the hot path
pays nothing for runs that are never paused.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, text, update

from controlplane.dispatch.sessions import WorkerSession
from controlplane.store.codec import to_epoch
from controlplane.store.run_batch import RUN_LAST_HASH, RUN_LAST_SEQ
from controlplane.store.schema import runs, tasks

# Literal predicates, not bound parameters: the partial indexes on tasks (WHERE status =
# 'ready' / 'leased') are only usable when the planner sees the same literal.
READY = text("tasks.status = 'ready'")
LEASED = text("tasks.status = 'leased'")
PAUSED = "paused"


def claim_ready_tasks(
    connection: Connection,
    session: WorkerSession,
    limit: int,
    now: datetime,
    lease_until: datetime,
) -> list[dict[str, Any]]:
    """Lease up to `limit` due tasks this session's worker implements, oldest first.

    `SKIP LOCKED` lets control planes sharing the database claim side by side (law 9).
    """
    versions = [
        and_(tasks.c.step_type == name, tasks.c.step_version.in_(["", version]))
        for name, version in sorted(session.implements)
    ]
    candidates = (
        select(tasks.c.id)
        .join(runs, runs.c.id == tasks.c.run_id)
        .where(
            READY,
            tasks.c.namespace == session.namespace,
            tasks.c.step_type.in_(sorted(session.step_types)),
            tasks.c.available_at <= now,
            or_(*versions),
        )
        .order_by(tasks.c.available_at)
        .limit(limit)
        # The run's row too, skipped when locked: leasing a task bumps its run's sequence
        # (below), while a transaction changing a run locks the run and then its tasks. A
        # claim that locked the task and then waited for the run could deadlock with one
        # (another control plane cancelling that run); a claim that never waits cannot. A
        # task of a run being changed elsewhere is claimed by the next look. The run first:
        # PostgreSQL locks in the order of OF, and a row it skips keeps the locks taken on
        # the way (`OF tasks, runs` held the task of a run it skipped).
        .with_for_update(skip_locked=True, of=[runs, tasks])
        # Evaluated once: as a subquery of the UPDATE, PostgreSQL may run it again per row
        # it checks and lease more than `limit` tasks, overfilling the worker's window.
        .cte("candidates")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    statement = (
        update(tasks)
        .where(tasks.c.id.in_(select(candidates.c.id)), READY)
        .values(
            status="leased",
            session_id=session.id,
            worker_id=session.worker_id,
            leased_at=now,
            lease_expires_at=lease_until,
        )
        .returning(*tasks.c)
    )
    if connection.dialect.name != "postgresql":
        return [dict(row._mapping) for row in connection.execute(statement)]
    # Each leased task starts an attempt, recorded as ATTEMPT_STARTED in its run's history
    # (`RunBatch.attempts_started`): the same statement takes the sequence numbers for them
    # under the run's row lock, and answers the run's hash to chain them from, so that the
    # hot path pays no extra round trip for it.
    claimed = statement.cte("claimed")
    counts = (
        select(claimed.c.run_id, func.count().label("k")).group_by(claimed.c.run_id).cte("counts")
    )
    bumped = (
        update(runs)
        .where(runs.c.id == counts.c.run_id)
        .values(last_seq=runs.c.last_seq + counts.c.k)
        .returning(runs.c.id, runs.c.last_seq, runs.c.last_hash)
        .cte("bumped")
    )
    combined = select(
        claimed,
        bumped.c.last_seq.label(RUN_LAST_SEQ),
        bumped.c.last_hash.label(RUN_LAST_HASH),
    ).select_from(claimed.outerjoin(bumped, bumped.c.id == claimed.c.run_id))
    return [dict(row._mapping) for row in connection.execute(combined)]


def earliest_pending(connection: Connection, now: datetime) -> float | None:
    """When the earliest ready task that is not due yet (a retry's backoff) becomes due."""
    found = connection.execute(
        select(func.min(tasks.c.available_at)).where(READY, tasks.c.available_at > now)
    ).scalar()
    return to_epoch(found) if found is not None else None


def expired_leases(connection: Connection, now: datetime, limit: int) -> list[tuple[str, str]]:
    """(task id, run id) of leases that ran out: their worker stopped heartbeating."""
    query = (
        select(tasks.c.id, tasks.c.run_id)
        .where(LEASED, tasks.c.lease_expires_at < now)
        .limit(limit)
    )
    return [(row.id, row.run_id) for row in connection.execute(query)]


def timed_out_leases(connection: Connection, now: datetime) -> list[tuple[str, str]]:
    """(task id, run id) of leased tasks past their node's timeout, heartbeats or not: a
    handler that hangs while its worker heartbeats must not hold the step for ever.

    Only tasks with a timeout are read, a handful of rows bounded by the workers' concurrency.
    """
    query = select(tasks.c.id, tasks.c.run_id, tasks.c.leased_at, tasks.c.timeout_seconds).where(
        LEASED, tasks.c.timeout_seconds > 0
    )
    return [
        (row.id, row.run_id)
        for row in connection.execute(query)
        if row.leased_at is not None and timed_out(row.leased_at, row.timeout_seconds, now)
    ]


def timed_out(leased_at: datetime, timeout_seconds: int, now: datetime) -> bool:
    return bool(timeout_seconds) and leased_at + timedelta(seconds=timeout_seconds) <= now


def session_leases(connection: Connection, session_ids: list[str]) -> list[tuple[str, str]]:
    """(task id, run id) of tasks leased to these (closed) sessions."""
    query = select(tasks.c.id, tasks.c.run_id).where(
        tasks.c.status == "leased", tasks.c.session_id.in_(session_ids)
    )
    return [(row.id, row.run_id) for row in connection.execute(query)]


def extend_leases(
    connection: Connection, session_id: str, task_ids: list[str], lease_until: datetime
) -> None:
    """Extend the leases `session_id` holds among `task_ids`: a lease that went to another
    stream (taken over by a reconnected worker on another control plane) is not its to keep."""
    connection.execute(
        update(tasks)
        .where(
            tasks.c.id.in_(sorted(set(task_ids))),
            tasks.c.status == "leased",
            tasks.c.session_id == session_id,
        )
        .values(lease_expires_at=lease_until)
    )


def take_over_leases(
    connection: Connection, namespace: str, session_ids: list[str], new_session_id: str
) -> list[tuple[str, datetime | None, str]]:
    """Move the leases of earlier sessions to `new_session_id` (a worker that reconnected and
    named them); only in `namespace`. (task id, leased at, worker id) of each moved lease."""
    statement = (
        update(tasks)
        .where(
            LEASED,
            tasks.c.namespace == namespace,
            tasks.c.session_id.in_(sorted(set(session_ids) - {new_session_id})),
        )
        .values(session_id=new_session_id)
        .returning(tasks.c.id, tasks.c.leased_at, tasks.c.worker_id)
    )
    return [(row.id, row.leased_at, row.worker_id or "") for row in connection.execute(statement)]


def hold_run_tasks(connection: Connection, run_id: str) -> int:
    """Keep the run's unleased tasks from being handed out (it was paused); how many."""
    statement = update(tasks).where(tasks.c.run_id == run_id, READY).values(status=PAUSED)
    return connection.execute(statement).rowcount or 0


def release_run_tasks(connection: Connection, run_id: str) -> int:
    """Make the held tasks of a resumed run ready again; how many."""
    statement = (
        update(tasks)
        .where(tasks.c.run_id == run_id, tasks.c.status == PAUSED)
        .values(status="ready")
    )
    return connection.execute(statement).rowcount or 0
