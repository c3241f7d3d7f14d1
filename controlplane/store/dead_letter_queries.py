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
    query = _filtered(
        select(
            *keys,
            func.count().label("n"),
            func.min(dead_letters.c.dead_lettered_at).label("oldest"),
            func.max(dead_letters.c.dead_lettered_at).label("newest"),
        ),
        namespace,
        where,
    ).group_by(*keys)
    query = query.order_by(func.count().desc(), *keys).limit(limit)
    groups = []
    for row in connection.execute(query):
        sample = connection.execute(
            _filtered(
                select(dead_letters.c.error_message, dead_letters.c.run_id),
                namespace,
                DeadLetterFilter(row.workflow_name, row.step_type, row.error_type),
            )
            .order_by(dead_letters.c.dead_lettered_at.desc())
            .limit(1)
        ).one()
        groups.append(
            Group(
                row.workflow_name,
                row.step_type,
                row.error_type,
                int(row.n),
                row.oldest,
                row.newest,
                sample.error_message,
                sample.run_id,
            )
        )
    return groups


def matching(
    connection: Connection, namespace: str, where: DeadLetterFilter, limit: int
) -> tuple[list[tuple[str, str]], int]:
    """(run id, node id) of up to `limit` dead letters, oldest first, and how many match."""
    rows = connection.execute(
        _filtered(select(dead_letters.c.run_id, dead_letters.c.node_id), namespace, where)
        .order_by(dead_letters.c.dead_lettered_at, dead_letters.c.run_id)
        .limit(limit)
    )
    found = [(row.run_id, row.node_id) for row in rows]
    total = connection.execute(
        _filtered(select(func.count()), namespace, where).select_from(dead_letters)
    ).scalar_one()
    return found, int(total)
