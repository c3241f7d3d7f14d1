"""Reading the dead letters operators triage: each one, or grouped by what went wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, func, or_, select

from controlplane.store.run_queries import decode_page_token, encode_page_token
from controlplane.store.schema import dead_letters


@dataclass(frozen=True)
class DeadLetterFilter:
    workflow_name: str = ""
    step_type: str = ""
    error_type: str = ""

    @property
    def empty(self) -> bool:
        return not (self.workflow_name or self.step_type or self.error_type)


def _filtered(query: Select[Any], namespace: str, where: DeadLetterFilter) -> Select[Any]:
    query = query.where(dead_letters.c.namespace == namespace)
    if where.workflow_name:
        query = query.where(dead_letters.c.workflow_name == where.workflow_name)
    if where.step_type:
        query = query.where(dead_letters.c.step_type == where.step_type)
    if where.error_type:
        query = query.where(dead_letters.c.error_type == where.error_type)
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


@dataclass(frozen=True)
class Group:
    workflow_name: str
    step_type: str
    error_type: str
    count: int
    oldest: Any
    newest: Any
    sample_message: str
    sample_run_id: str


def group_dead_letters(
    connection: Connection, namespace: str, where: DeadLetterFilter, limit: int
) -> list[Group]:
    """(workflow, step type, error type) with counts, largest first: 4,000 runs failing the
    same way are one line."""
    keys = (dead_letters.c.workflow_name, dead_letters.c.step_type, dead_letters.c.error_type)
    # One pass: window functions give each row its group's figures and rank it within the
    # group, newest first; the first row of each group is its sample.
    ranked = _filtered(
        select(
            *keys,
            dead_letters.c.error_message,
            dead_letters.c.run_id,
            func.count().over(partition_by=keys).label("n"),
            func.min(dead_letters.c.dead_lettered_at).over(partition_by=keys).label("oldest"),
            func.max(dead_letters.c.dead_lettered_at).over(partition_by=keys).label("newest"),
            func.row_number()
            .over(
                partition_by=keys,
                order_by=(dead_letters.c.dead_lettered_at.desc(), dead_letters.c.run_id.desc()),
            )
            .label("rank"),
        ),
        namespace,
        where,
    ).subquery()
    query = (
        select(ranked)
        .where(ranked.c.rank == 1)
        .order_by(
            ranked.c.n.desc(), ranked.c.workflow_name, ranked.c.step_type, ranked.c.error_type
        )
        .limit(limit)
    )
    return [
        Group(
            row.workflow_name,
            row.step_type,
            row.error_type,
            int(row.n),
            row.oldest,
            row.newest,
            row.error_message,
            row.run_id,
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
