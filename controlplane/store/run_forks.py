"""The `run_forks` table: which run was forked from which, at which node (ForkRun).

A row per fork, written in the transaction that starts the forked run. The parent's own
rows are never touched by a fork: its side of the link is this table's index on
`parent_run_id`, read when GetRun shows the parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Connection, Index, MetaData, String, Table, or_, select

from controlplane.store.types import UtcDateTime


def define_table(metadata: MetaData) -> Table:
    """`run_forks` on `metadata` (schema.py's: import it from there)."""
    return Table(
        "run_forks",
        metadata,
        Column("child_run_id", String(36), primary_key=True),
        Column("parent_run_id", String(36), nullable=False),
        Column("namespace", String(200), nullable=False),
        # The node the fork executed from.
        Column("node_id", String(200), nullable=False),
        Column("principal", String(300), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Index("ix_run_forks_parent", "parent_run_id", "created_at"),
    )


@dataclass(frozen=True)
class ForkLink:
    parent_run_id: str
    child_run_id: str
    node_id: str
    principal: str
    created_at: datetime


def links_of(connection: Connection, table: Table, run_id: str) -> list[ForkLink]:
    """The forks `run_id` is the child or a parent of, oldest first."""
    query = (
        select(table)
        .where(or_(table.c.child_run_id == run_id, table.c.parent_run_id == run_id))
        .order_by(table.c.created_at, table.c.child_run_id)
    )
    return [_link(row._mapping) for row in connection.execute(query)]


def _link(row: Any) -> ForkLink:
    return ForkLink(
        row["parent_run_id"],
        row["child_run_id"],
        row["node_id"],
        row["principal"],
        row["created_at"],
    )
