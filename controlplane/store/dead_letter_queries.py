"""Reading the dead letters operators triage: each one, or grouped by what went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, or_, select

from controlplane.store.run_queries import decode_page_token, encode_page_token
from controlplane.store.schema import dead_letters


@dataclass(frozen=True)
class DeadLetterFilter:
    """Empty fields match everything; `run_ids` (when given) narrows to those runs."""

    workflow_name: str = ""
    step_type: str = ""
    error_type: str = ""
    workflow_version: str = ""
    step_version: str = ""
    error_signature: str = ""
    run_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (
            self.workflow_name
            or self.step_type
            or self.error_type
            or self.workflow_version
            or self.step_version
            or self.error_signature
            or self.run_ids
        )


_MATCHED_COLUMNS = (
    "workflow_name",
    "step_type",
    "error_type",
    "workflow_version",
    "step_version",
    "error_signature",
)


def _filtered(query: Select[Any], namespace: str, where: DeadLetterFilter) -> Select[Any]:
    query = query.where(dead_letters.c.namespace == namespace)
    for name in _MATCHED_COLUMNS:
        if value := getattr(where, name):
            query = query.where(dead_letters.c[name] == value)
    if where.run_ids:
        query = query.where(dead_letters.c.run_id.in_(sorted(set(where.run_ids))))
    return query


def list_dead_letters(
    connection: Connection,
    namespace: str,
    where: DeadLetterFilter,
    *,
    page_size: int = 100,
    page_token: str = "",
) -> tuple[list[Row[Any]], str]:
    """A page of dead letters, oldest first (the order an incident is worked through)."""
    query = _filtered(select(dead_letters), namespace, where)
    if page_token:
        since, run_id = decode_page_token(page_token)
        query = query.where(
            or_(
                dead_letters.c.dead_lettered_at > since,
                and_(dead_letters.c.dead_lettered_at == since, dead_letters.c.run_id > run_id),
            )
        )
    query = query.order_by(dead_letters.c.dead_lettered_at, dead_letters.c.run_id)
    rows = list(connection.execute(query.limit(page_size + 1)))
    if len(rows) <= page_size:
        return rows, ""
    last = rows[page_size - 1]
    return rows[:page_size], encode_page_token(last.dead_lettered_at, last.run_id)


# A group is one value of each: what 4,000 failures of one outage have in common.
GROUP_KEYS = (
    "workflow_name",
    "workflow_version",
    "step_type",
    "step_version",
    "error_type",
    "error_signature",
    "idempotency",
)


@dataclass(frozen=True)
class Group:
    workflow_name: str
    workflow_version: str
    step_type: str
    step_version: str
    error_type: str
    error_signature: str
    idempotency: str
    count: int
    oldest: Any
    newest: Any
    sample_message: str
    sample_run_id: str


def group_dead_letters(
    connection: Connection, namespace: str, where: DeadLetterFilter, limit: int, offset: int = 0
) -> list[Group]:
    """Groups with counts, first and last seen, largest first: 4,000 runs failing the same
    way are one line.

    One aggregate over the signature index, then, for the groups of this page only, the
    newest member (an index probe each) as the sample: no window over every row.
    """
    keys = [dead_letters.c[name] for name in GROUP_KEYS]
    grouped = (
        _filtered(
            select(
                *keys,
                func.count().label("n"),
                func.min(dead_letters.c.dead_lettered_at).label("oldest"),
                func.max(dead_letters.c.dead_lettered_at).label("newest"),
            ),
            namespace,
            where,
        )
        .group_by(*keys)
        .order_by(func.count().desc(), *keys)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    newest = (
        select(dead_letters.c.run_id)
        .where(
            dead_letters.c.namespace == namespace,
            *(dead_letters.c[name] == grouped.c[name] for name in GROUP_KEYS),
        )
        .order_by(dead_letters.c.dead_lettered_at.desc(), dead_letters.c.run_id.desc())
        .limit(1)
        .scalar_subquery()
    )
    sample = dead_letters.alias("sample")
    query = (
        select(grouped, sample.c.run_id.label("sample_run_id"), sample.c.error_message)
        .select_from(grouped.outerjoin(sample, sample.c.run_id == newest))
        .order_by(grouped.c.n.desc(), *(grouped.c[name] for name in GROUP_KEYS))
    )
    return [
        Group(
            row.workflow_name,
            row.workflow_version,
            row.step_type,
            row.step_version,
            row.error_type,
            row.error_signature,
            row.idempotency,
            int(row.n),
            row.oldest,
            row.newest,
            row.error_message or "",
            row.sample_run_id or "",
        )
        for row in connection.execute(query)
    ]


def matching(
    connection: Connection, namespace: str, where: DeadLetterFilter, limit: int
) -> list[tuple[str, str]]:
    """(run id, node id) of up to `limit` dead letters, oldest first."""
    rows = connection.execute(
        _filtered(select(dead_letters.c.run_id, dead_letters.c.node_id), namespace, where)
        .order_by(dead_letters.c.dead_lettered_at, dead_letters.c.run_id)
        .limit(limit)
    )
    return [(row.run_id, row.node_id) for row in rows]


def count_matching(connection: Connection, namespace: str, where: DeadLetterFilter) -> int:
    query = _filtered(select(func.count()), namespace, where).select_from(dead_letters)
    return int(connection.execute(query).scalar_one())


def selected(namespace: str, where: DeadLetterFilter, limit: int) -> Select[Any]:
    """The dead letters a redrive selects, oldest first, with what an item keeps of each;
    `limit` 0: all of them."""
    query = _filtered(
        select(
            dead_letters.c.run_id,
            dead_letters.c.node_id,
            dead_letters.c.step_type,
            dead_letters.c.step_version,
            dead_letters.c.idempotency,
            dead_letters.c.attempts,
            dead_letters.c.dead_lettered_at,
        ),
        namespace,
        where,
    ).order_by(dead_letters.c.dead_lettered_at, dead_letters.c.run_id)
    return query.limit(limit) if limit else query


@dataclass(frozen=True)
class PlannedStepType:
    step_type: str
    step_version: str
    idempotency: str
    count: int


def planned(
    connection: Connection, namespace: str, where: DeadLetterFilter, limit: int
) -> list[PlannedStepType]:
    """How many of the selection per step type, version and idempotency declaration."""
    chosen = selected(namespace, where, limit).subquery()
    query = (
        select(chosen.c.step_type, chosen.c.step_version, chosen.c.idempotency, func.count())
        .group_by(chosen.c.step_type, chosen.c.step_version, chosen.c.idempotency)
        .order_by(chosen.c.step_type, chosen.c.step_version, chosen.c.idempotency)
    )
    return [PlannedStepType(r[0], r[1], r[2], int(r[3])) for r in connection.execute(query)]
