"""Reading and writing durable operations (redrives, run actions) and their items.

Every count an operator sees is a count of item rows; every change of an item is a guarded
update (`... AND state = 'PENDING'`) whose row count says whether it took effect, so that two
control planes, or one that restarted, never act twice on one item.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, literal, or_, select

from controlplane.store.bulk import among
from controlplane.store.codec import to_datetime, to_epoch
from controlplane.store.dead_letter_queries import DeadLetterFilter, selected
from controlplane.store.run_queries import BadPageToken, decode_page_token, encode_page_token
from controlplane.store.schema import operation_items, operations, runs

# Operation states.
RUNNING = "RUNNING"
COMPLETED = "COMPLETED"
CANCELLED = "CANCELLED"

# Item states.
PENDING = "PENDING"
EXCLUDED = "EXCLUDED"
RETRIED = "RETRIED"
SUCCEEDED = "SUCCEEDED"
FAILED_AGAIN = "FAILED_AGAIN"
NOT_RETRIED = "NOT_RETRIED"
ITEM_CANCELLED = "CANCELLED"
INTERRUPTED = "INTERRUPTED"
# A run action's items (run_action_queries.py): the run was acted on, or the action did not
# apply to it (when selected, or when its turn came).
APPLIED = "APPLIED"
NOT_APPLICABLE = "NOT_APPLICABLE"
# Items still to act on or to follow: an operation is done without any.
OPEN_ITEMS = (PENDING, RETRIED)
# Items whose step was retried, whatever came of it.
RETRIED_ITEMS = (RETRIED, SUCCEEDED, FAILED_AGAIN, INTERRUPTED)

REDRIVE = "redrive"
UNSAFE = "none"


@dataclass(frozen=True)
class NewRedrive:
    id: str
    namespace: str
    request_id: str | None
    created_by: str
    comment: str
    # JSON of the selection as requested.
    selection: str
    rate_per_second: float
    include_unsafe: bool
    now: float


def create_redrive(
    connection: Connection, new: NewRedrive, where: DeadLetterFilter, limit: int
) -> int:
    """The operation row and one item per selected dead letter, in one statement each.

    Returns:
        How many items will be retried (the selection less the excluded unsafe ones).
    """
    now = to_datetime(new.now)
    connection.execute(
        operations.insert().values(
            id=new.id,
            namespace=new.namespace,
            kind=REDRIVE,
            state=RUNNING,
            request_id=new.request_id,
            created_by=new.created_by,
            comment=new.comment,
            selection=new.selection,
            rate_per_second=new.rate_per_second,
            include_unsafe=new.include_unsafe,
            next_at=now,
            created_at=now,
        )
    )
    chosen = selected(new.namespace, where, limit).subquery()
    state: Any = (
        literal(PENDING)
        if new.include_unsafe
        else case((chosen.c.idempotency == UNSAFE, literal(EXCLUDED)), else_=literal(PENDING))
    )
    seq = func.row_number().over(order_by=(chosen.c.dead_lettered_at, chosen.c.run_id))
    connection.execute(
        operation_items.insert().from_select(
            [
                "operation_id",
                "run_id",
                "seq",
                "node_id",
                "step_type",
                "step_version",
                "idempotency",
                "attempts",
                "state",
            ],
            select(
                literal(new.id),
                chosen.c.run_id,
                seq,
                chosen.c.node_id,
                chosen.c.step_type,
                chosen.c.step_version,
                chosen.c.idempotency,
                chosen.c.attempts,
                state,
            ),
        )
    )
    return item_counts(connection, new.id).get(PENDING, 0)


def by_request_id(connection: Connection, namespace: str, request_id: str) -> Row[Any] | None:
    query = select(operations).where(
        operations.c.namespace == namespace, operations.c.request_id == request_id
    )
    return connection.execute(query).first()


def get(connection: Connection, namespace: str, operation_id: str) -> Row[Any] | None:
    query = select(operations).where(
        operations.c.namespace == namespace, operations.c.id == operation_id
    )
    return connection.execute(query).first()


def item_counts(connection: Connection, operation_id: str) -> dict[str, int]:
    query = (
        select(operation_items.c.state, func.count())
        .where(operation_items.c.operation_id == operation_id)
        .group_by(operation_items.c.state)
    )
    return {state: int(count) for state, count in connection.execute(query)}


def retry_window(connection: Connection, operation_id: str) -> tuple[Any, Any]:
    """When the first and the last item were retried (None before the first)."""
    query = select(
        func.min(operation_items.c.retried_at), func.max(operation_items.c.retried_at)
    ).where(operation_items.c.operation_id == operation_id)
    first, last = connection.execute(query).one()
    return first, last


@dataclass(frozen=True)
class PlannedItems:
    step_type: str
    step_version: str
    idempotency: str
    count: int
    excluded: bool


def planned_items(connection: Connection, operation_id: str) -> list[PlannedItems]:
    """The plan as the operation selected it: items per step type, excluded or not."""
    excluded = operation_items.c.state == EXCLUDED
    query = (
        select(
            operation_items.c.step_type,
            operation_items.c.step_version,
            operation_items.c.idempotency,
            func.count(),
            excluded.label("excluded"),
        )
        .where(operation_items.c.operation_id == operation_id)
        .group_by(
            operation_items.c.step_type,
            operation_items.c.step_version,
            operation_items.c.idempotency,
            excluded,
        )
        .order_by(
            operation_items.c.step_type,
            operation_items.c.step_version,
            operation_items.c.idempotency,
        )
    )
    return [
        PlannedItems(r[0], r[1], r[2], int(r[3]), bool(r[4])) for r in connection.execute(query)
    ]


@dataclass(frozen=True)
class Failure:
    error_type: str
    error_signature: str
    count: int
    sample_message: str
    sample_run_ids: list[str]


def failures(connection: Connection, operation_id: str, samples: int = 5) -> list[Failure]:
    """Items that failed again, by what they failed with, largest first."""
    failed = and_(
        operation_items.c.operation_id == operation_id, operation_items.c.state == FAILED_AGAIN
    )
    keys = (operation_items.c.error_type, operation_items.c.error_signature)
    groups = connection.execute(
        select(*keys, func.count(), func.max(operation_items.c.error_message))
        .where(failed)
        .group_by(*keys)
        .order_by(func.count().desc(), *keys)
        .limit(50)
    ).all()
    found: list[Failure] = []
    for error_type, signature, count, message in groups:
        sample = connection.execute(
            select(operation_items.c.run_id)
            .where(
                failed,
                operation_items.c.error_type == error_type,
                operation_items.c.error_signature == signature,
            )
            .order_by(operation_items.c.seq)
            .limit(samples)
        ).scalars()
        found.append(
            Failure(error_type or "", signature or "", int(count), message or "", list(sample))
        )
    return found


def list_page(
    connection: Connection,
    namespace: str,
    *,
    page_size: int,
    page_token: str,
    running_only: bool,
) -> tuple[list[Row[Any]], str]:
    """Operations newest first; the token is the last one's (created_at, id)."""
    query = select(operations).where(operations.c.namespace == namespace)
    if running_only:
        query = query.where(operations.c.finished_at.is_(None))
    if page_token:
        created_at, operation_id = decode_page_token(page_token)
        query = query.where(
            or_(
                operations.c.created_at < created_at,
                and_(operations.c.created_at == created_at, operations.c.id < operation_id),
            )
        )
    query = query.order_by(operations.c.created_at.desc(), operations.c.id.desc())
    rows = list(connection.execute(query.limit(page_size + 1)))
    if len(rows) <= page_size:
        return rows, ""
    last = rows[page_size - 1]
    return rows[:page_size], encode_page_token(last.created_at, last.id)


def items_page(
    connection: Connection,
    operation_id: str,
    *,
    state: str | None,
    page_size: int,
    page_token: str,
) -> tuple[list[Row[Any]], str]:
    """Items in selection order; the token is the last one's seq."""
    query = select(operation_items).where(operation_items.c.operation_id == operation_id)
    if state is not None:
        query = query.where(operation_items.c.state == state)
    if page_token:
        try:
            after = int(base64.urlsafe_b64decode(page_token.encode()).decode())
        except ValueError as exc:
            raise BadPageToken("page_token is not one this server issued") from exc
        query = query.where(operation_items.c.seq > after)
    rows = list(connection.execute(query.order_by(operation_items.c.seq).limit(page_size + 1)))
    if len(rows) <= page_size:
        return rows, ""
    return rows[:page_size], _encode(str(rows[page_size - 1].seq))


def cancel(
    connection: Connection, operation_id: str, principal: str, reason: str, now: float
) -> bool:
    """Cancel a running operation and its items not retried yet; False if it was not running.

    An item a committer is retrying at this moment is locked by that transaction: this
    waits for it, and then leaves it retried.
    """
    changed = connection.execute(
        operations.update()
        .where(operations.c.id == operation_id, operations.c.state == RUNNING)
        .values(
            state=CANCELLED,
            cancelled_by=principal,
            cancelled_at=to_datetime(now),
            cancel_reason=reason,
        )
    )
    if changed.rowcount == 0:
        return False
    _cancel_pending(connection, operation_id, now)
    return True


def _cancel_pending(connection: Connection, operation_id: str, now: float) -> None:
    connection.execute(
        operation_items.update()
        .where(operation_items.c.operation_id == operation_id, operation_items.c.state == PENDING)
        .values(state=ITEM_CANCELLED, settled_at=to_datetime(now), reason="operation cancelled")
    )


# -- what the runner does ----------------------------------------------------------------


def unfinished(connection: Connection) -> list[Row[Any]]:
    """Operations of every namespace that still have items to retry or to follow."""
    return list(
        connection.execute(
            select(operations.c.id, operations.c.state, operations.c.next_at)
            .where(operations.c.finished_at.is_(None))
            .order_by(operations.c.created_at)
        )
    )


@dataclass(frozen=True)
class ClaimedItem:
    run_id: str
    node_id: str
    attempts: int


@dataclass(frozen=True)
class Claim:
    """Items this control plane may retry now, with what to retry them as."""

    operation_id: str
    namespace: str
    principal: str
    comment: str
    items: list[ClaimedItem]
    # When the next item is due (the token bucket's state after this claim).
    next_at: float
    kind: str = REDRIVE
    # A run action's action (JSON), None for a redrive.
    action: str | None = None


def claim_due(
    connection: Connection, operation_id: str, now: float, lease: float, tolerance: float
) -> Claim | None:
    """Take the items due by `now` at the operation's rate (a token bucket in its row).

    The operation's row is locked while its bucket is read and advanced (SKIP LOCKED:
    another control plane claiming it meanwhile is simply left to it), so the rate holds
    over every control plane. A bucket left behind (the runner was down) gives at most
    `tolerance` seconds of items at once, never a burst of everything missed.
    """
    op = connection.execute(
        select(operations)
        .where(operations.c.id == operation_id, operations.c.state == RUNNING)
        .with_for_update(skip_locked=True)
    ).first()
    if op is None:
        return None
    rate = float(op.rate_per_second)
    next_at = to_epoch(op.next_at)
    if next_at > now:
        return Claim(
            op.id, op.namespace, op.created_by, op.comment, [], next_at, op.kind, op.action
        )
    start = max(next_at, now - tolerance)
    wanted = math.floor((now - start) * rate) + 1
    rows = connection.execute(
        select(operation_items.c.run_id, operation_items.c.node_id, operation_items.c.attempts)
        .where(
            operation_items.c.operation_id == operation_id,
            operation_items.c.state == PENDING,
            or_(
                operation_items.c.claimed_until.is_(None),
                operation_items.c.claimed_until < to_datetime(now),
            ),
        )
        .order_by(operation_items.c.seq)
        .limit(wanted)
        .with_for_update(skip_locked=True)
    ).all()
    items = [ClaimedItem(r.run_id, r.node_id, int(r.attempts)) for r in rows]
    if items:
        connection.execute(
            operation_items.update()
            .where(
                operation_items.c.operation_id == operation_id,
                among(connection, operation_items.c.run_id, [i.run_id for i in items]),
            )
            .values(claimed_until=to_datetime(now + lease))
        )
        next_at = start + len(items) / rate
        connection.execute(
            operations.update()
            .where(operations.c.id == operation_id)
            .values(next_at=to_datetime(next_at))
        )
    return Claim(op.id, op.namespace, op.created_by, op.comment, items, next_at, op.kind, op.action)


def retried_items(connection: Connection, operation_id: str, limit: int) -> list[Row[Any]]:
    """Retried items not settled yet, with their run's status and state (to settle them)."""
    query = (
        select(
            operation_items.c.run_id,
            operation_items.c.node_id,
            operation_items.c.attempts,
            runs.c.status,
            runs.c.state,
        )
        .select_from(operation_items.outerjoin(runs, runs.c.id == operation_items.c.run_id))
        .where(operation_items.c.operation_id == operation_id, operation_items.c.state == RETRIED)
        .order_by(operation_items.c.seq)
        .limit(limit)
    )
    return list(connection.execute(query))


@dataclass(frozen=True)
class Settled:
    run_id: str
    state: str
    error_type: str | None = None
    error_message: str | None = None
    error_signature: str | None = None
    reason: str | None = None


def settle(
    connection: Connection, operation_id: str, outcomes: Iterable[Settled], now: float
) -> None:
    """Record what retried items led to; an item settled already is left as it is."""
    for outcome in outcomes:
        connection.execute(
            operation_items.update()
            .where(
                operation_items.c.operation_id == operation_id,
                operation_items.c.run_id == outcome.run_id,
                operation_items.c.state == RETRIED,
            )
            .values(
                state=outcome.state,
                settled_at=to_datetime(now),
                error_type=outcome.error_type,
                error_message=outcome.error_message,
                error_signature=outcome.error_signature,
                reason=outcome.reason,
            )
        )


def finish_if_done(connection: Connection, operation_id: str, now: float) -> bool:
    """Mark the operation finished once no item is left to retry or to follow."""
    op = connection.execute(
        select(operations.c.state, operations.c.finished_at).where(operations.c.id == operation_id)
    ).first()
    if op is None or op.finished_at is not None:
        return False
    if op.state == CANCELLED:
        # A claim racing the cancellation may have left an item pending.
        _cancel_pending(connection, operation_id, now)
    still_open = connection.execute(
        select(func.count())
        .select_from(operation_items)
        .where(
            operation_items.c.operation_id == operation_id,
            operation_items.c.state.in_(OPEN_ITEMS),
        )
    ).scalar_one()
    if still_open:
        return False
    connection.execute(
        operations.update()
        .where(operations.c.id == operation_id, operations.c.finished_at.is_(None))
        .values(
            finished_at=to_datetime(now),
            state=case((operations.c.state == RUNNING, COMPLETED), else_=operations.c.state),
        )
    )
    return True


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()
