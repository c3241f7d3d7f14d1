"""SQL of the `worker_sessions` table: the worker streams of every control plane.

Written by each control plane's committer for its own streams (opened, credited, draining,
confirmed, closed); read by any control plane for ListWorkers and for the step types whose
queued tasks no connected worker can take. See `schema.worker_sessions` for why a row that
is past `expires_at` is not a connected worker.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update

from controlplane.store.bulk import among, update_rows
from controlplane.store.codec import to_datetime
from controlplane.store.schema import tasks, worker_sessions

if TYPE_CHECKING:
    from controlplane.dispatch.sessions import WorkerSession

# Rows whose control plane stopped confirming them are kept this long after they expired
# (ListWorkers shows them with include_stale), then deleted by whichever control plane
# confirms its own streams next.
STALE_RETENTION = timedelta(hours=1)
# Literal predicates, so that the partial indexes on tasks apply (see dispatch/claims.py).
_READY = text("tasks.status = 'ready'")
_LEASED = text("tasks.status = 'leased'")


@dataclass(frozen=True)
class SessionRow:
    id: str
    namespace: str
    worker_id: str
    principal: str
    step_types: tuple[tuple[str, str], ...]
    credit: int
    draining: bool
    control_plane: str
    connected_at: datetime
    seen_at: datetime
    expires_at: datetime
    in_flight: int = 0
    last_heartbeat: datetime | None = None
    # The latest message of any kind from the worker, as of `seen_at` (None: rows written
    # before migration 0017 until their next confirmation).
    heard_at: datetime | None = None


@dataclass
class QueuedStepType:
    name: str
    version: str
    queued: int
    oldest: datetime
    capable_workers: int = 0
    connected_versions: list[str] = field(default_factory=list)


# -- written by a control plane's committer, for its own streams --------------------------


def insert_session(
    connection: Connection,
    session: WorkerSession,
    control_plane: str,
    connected_at: datetime,
    expires_at: datetime,
    lease_seconds: float | None = None,
) -> None:
    connection.execute(
        insert(worker_sessions).values(
            id=session.id,
            namespace=session.namespace,
            worker_id=session.worker_id,
            principal=session.principal,
            step_types=json.dumps(sorted(session.implements)),
            credit=session.window,
            draining=session.draining,
            control_plane=control_plane,
            lease_seconds=lease_seconds,
            connected_at=connected_at,
            seen_at=connected_at,
            expires_at=expires_at,
            # The Hello is the first message heard; a row written again later keeps the
            # latest one.
            heard_at=to_datetime(session.heard_at) if session.heard_at else connected_at,
        )
    )


def delete_sessions(
    connection: Connection, session_ids: Iterable[str], namespace: str | None = None
) -> None:
    """Delete the rows of these streams (only in `namespace`, when given)."""
    ids = sorted(set(session_ids))
    if not ids:
        return
    statement = delete(worker_sessions).where(worker_sessions.c.id.in_(ids))
    if namespace is not None:
        statement = statement.where(worker_sessions.c.namespace == namespace)
    connection.execute(statement)


def set_credit(connection: Connection, session_id: str, credit: int) -> None:
    connection.execute(
        update(worker_sessions).where(worker_sessions.c.id == session_id).values(credit=credit)
    )


def set_draining(connection: Connection, session_id: str) -> None:
    connection.execute(
        update(worker_sessions).where(worker_sessions.c.id == session_id).values(draining=True)
    )


def confirm_sessions(
    connection: Connection,
    sessions: Sequence[WorkerSession],
    control_plane: str,
    now: datetime,
    expires_at: datetime,
    lease_seconds: float,
) -> int:
    """The streams are still open: push their rows' expiry forward, write when each last
    heard from its worker, and delete the rows that expired long ago (any control plane's).
    Returns how many rows were written back.

    Two UPDATEs in the usual case, whatever the number of streams and of messages they
    carried since the last confirmation: the expiry of all, then (one statement, a row
    each) the time of each stream's latest message since its Hello. A row missing here
    was deleted by another control plane after this one failed to confirm it for
    `STALE_RETENTION` (the database was out of its reach that long); the stream is still
    open, so its row is written again, with this moment as its connection time (the first
    one was lost with the row).
    """
    connection.execute(
        delete(worker_sessions).where(worker_sessions.c.expires_at < now - STALE_RETENTION)
    )
    if not sessions:
        return 0
    ids = sorted(s.id for s in sessions)
    confirmed = connection.execute(
        update(worker_sessions)
        .where(worker_sessions.c.id.in_(ids))
        .values(seen_at=now, expires_at=expires_at, lease_seconds=lease_seconds)
    ).rowcount
    missing: list[WorkerSession] = []
    if confirmed != len(ids):
        present = set(
            connection.execute(
                select(worker_sessions.c.id).where(worker_sessions.c.id.in_(ids))
            ).scalars()
        )
        missing = [s for s in sessions if s.id not in present]
        for session in missing:
            insert_session(connection, session, control_plane, now, expires_at, lease_seconds)
    # A message read while this transaction was being built is heard "as of now": the row
    # never says it heard something later than it was confirmed.
    moment = now.timestamp()
    heard = [
        {"id": s.id, "heard_at": to_datetime(min(s.heard_at, moment))}
        for s in sorted(sessions, key=lambda s: s.id)
        if s.heard_at
    ]
    update_rows(connection, worker_sessions, "id", heard)
    return len(missing)


# -- read by any control plane ------------------------------------------------------------


def list_sessions(
    connection: Connection,
    namespace: str,
    now: datetime,
    page_size: int,
    page_token: str = "",
    include_stale: bool = False,
) -> tuple[list[SessionRow], str]:
    """A page of the namespace's worker streams by worker id, with their in-flight tasks
    and latest heartbeat, and the token of the next page.

    Raises:
        ValueError: For a page token this module did not make.
    """
    c = worker_sessions.c
    query = select(worker_sessions).where(c.namespace == namespace)
    if not include_stale:
        query = query.where(c.expires_at >= now)
    if page_token:
        worker_id, session_id = decode_token(page_token)
        query = query.where(
            or_(c.worker_id > worker_id, and_(c.worker_id == worker_id, c.id > session_id))
        )
    rows = list(connection.execute(query.order_by(c.worker_id, c.id).limit(page_size + 1)))
    token = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        token = encode_token(rows[-1].worker_id, rows[-1].id)
    leases = _leases(connection, [row.id for row in rows])
    listed = []
    for row in rows:
        held = leases.get(row.id, [])
        listed.append(
            SessionRow(
                id=row.id,
                namespace=row.namespace,
                worker_id=row.worker_id,
                principal=row.principal,
                step_types=tuple((name, version) for name, version in json.loads(row.step_types)),
                credit=row.credit,
                draining=row.draining,
                control_plane=row.control_plane,
                connected_at=row.connected_at,
                seen_at=row.seen_at,
                expires_at=row.expires_at,
                in_flight=len(held),
                last_heartbeat=_last_heartbeat(held, row.lease_seconds),
                heard_at=row.heard_at,
            )
        )
    return listed, token


def _leases(
    connection: Connection, session_ids: list[str]
) -> dict[str, list[tuple[datetime | None, datetime | None]]]:
    """(leased at, lease expires at) of the tasks each session holds now."""
    if not session_ids:
        return {}
    query = select(tasks.c.session_id, tasks.c.leased_at, tasks.c.lease_expires_at).where(
        _LEASED, tasks.c.session_id.in_(session_ids)
    )
    held: dict[str, list[tuple[datetime | None, datetime | None]]] = defaultdict(list)
    for row in connection.execute(query):
        held[row.session_id].append((row.leased_at, row.lease_expires_at))
    return held


def _last_heartbeat(
    held: Iterable[tuple[datetime | None, datetime | None]], lease_seconds: float | None
) -> datetime | None:
    """A lease is taken until `leased_at + lease`, and a heartbeat extends it to `then +
    lease`: an expiry later than the first one says when the latest heartbeat came."""
    if not lease_seconds:
        return None
    lease = timedelta(seconds=lease_seconds)
    # A millisecond of slack: the claim and the expiry are computed from one clock reading,
    # but stored values may be rounded (SQLite keeps microseconds, PostgreSQL too).
    slack = timedelta(milliseconds=1)
    beats = [
        expires - lease
        for leased, expires in held
        if leased is not None and expires is not None and expires - lease > leased + slack
    ]
    return max(beats, default=None)


@dataclass(frozen=True)
class LiveWorker:
    """A stream held by a control plane that still confirms it: who can take a task, as
    blocked-on and the queued step types judge it (one rule for both)."""

    session_id: str
    namespace: str
    implements: frozenset[tuple[str, str]]
    draining: bool
    credit: int
    # Tasks leased to the stream now; counted only when asked for (`live_workers`).
    in_flight: int = 0

    @property
    def free(self) -> int:
        """Slots of its window not holding a task (none once it drains)."""
        return 0 if self.draining else max(0, self.credit - self.in_flight)

    def versions_of(self, step_type: str) -> set[str]:
        return {version for name, version in self.implements if name == step_type}

    def declares(self, step_type: str, step_version: str) -> bool:
        """It implements the version asked for (any version, when the task names none)."""
        if step_version:
            return (step_type, step_version) in self.implements
        return bool(self.versions_of(step_type))

    def can_take(self, step_type: str, step_version: str) -> bool:
        """Whether the stream would be handed such a task: it declares it and is not
        draining (a draining worker takes nothing new)."""
        return not self.draining and self.declares(step_type, step_version)


def live_workers(
    connection: Connection,
    namespace: str,
    now: datetime,
    step_types: Collection[str] | None = None,
    *,
    count_in_flight: bool = False,
) -> list[LiveWorker]:
    """The namespace's streams whose control plane confirmed them recently (`expires_at`
    not passed), whichever control plane holds them; only those declaring one of
    `step_types`, when given. `count_in_flight` reads how many tasks each holds now."""
    c = worker_sessions.c
    query = select(c.id, c.step_types, c.credit, c.draining).where(
        c.namespace == namespace, c.expires_at >= now
    )
    wanted = None if step_types is None else set(step_types)
    found = []
    for row in connection.execute(query):
        implements = frozenset((name, version) for name, version in json.loads(row.step_types))
        if wanted is not None and not any(name in wanted for name, _ in implements):
            continue
        found.append(LiveWorker(row.id, namespace, implements, row.draining, row.credit))
    if not count_in_flight or not found:
        return found
    held = _in_flight(connection, [worker.session_id for worker in found])
    return [replace(w, in_flight=held.get(w.session_id, 0)) for w in found]


def _in_flight(connection: Connection, session_ids: list[str]) -> dict[str, int]:
    query = (
        select(tasks.c.session_id, func.count().label("held"))
        .where(_LEASED, among(connection, tasks.c.session_id, session_ids))
        .group_by(tasks.c.session_id)
    )
    return {row.session_id: row.held for row in connection.execute(query)}


def queued_step_types(
    connection: Connection, namespace: str, now: datetime
) -> list[QueuedStepType]:
    """Step types (and versions) with tasks due and not leased, with the connected workers
    that can take them (a task with no version is taken by any version of its type)."""
    query = (
        select(
            tasks.c.step_type,
            tasks.c.step_version,
            func.count().label("queued"),
            func.min(tasks.c.available_at).label("oldest"),
        )
        .where(_READY, tasks.c.namespace == namespace, tasks.c.available_at <= now)
        .group_by(tasks.c.step_type, tasks.c.step_version)
    )
    queued = [
        QueuedStepType(row.step_type, row.step_version, row.queued, row.oldest)
        for row in connection.execute(query)
    ]
    if not queued:
        return []
    workers = live_workers(connection, namespace, now, {entry.name for entry in queued})
    for entry in queued:
        entry.capable_workers = sum(w.can_take(entry.name, entry.version) for w in workers)
        entry.connected_versions = sorted(
            {version for w in workers for version in w.versions_of(entry.name)}
        )
    return sorted(queued, key=lambda e: (e.capable_workers > 0, -e.queued, e.name, e.version))


def encode_token(worker_id: str, session_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([worker_id, session_id]).encode()).decode()


def decode_token(token: str) -> tuple[str, str]:
    """ValueError for a token this module did not make."""
    try:
        worker_id, session_id = json.loads(
            base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        )
    except (ValueError, UnicodeError, TypeError):
        raise ValueError("is not a page token of this listing") from None
    if not isinstance(worker_id, str) or not isinstance(session_id, str) or not session_id:
        raise ValueError("is not a page token of this listing")
    if "\x00" in worker_id + session_id:
        # Never in a token this module made (the ids are stored as text, which refuses NUL).
        raise ValueError("is not a page token of this listing")
    return worker_id, session_id
