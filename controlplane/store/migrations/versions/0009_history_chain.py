"""history chain: each event's hash covers the one before it; the run keeps its last hash

`history.hash` is sha256 over the previous event's hash and the event's columns
(controlplane/audit/chain.py); `runs.last_hash` is the hash of the run's last event, so the
committer chains a new event without reading history. Existing runs are chained here, a
chunk of runs at a time, so a large history is never held whole.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

from controlplane.audit.chain import GENESIS, row_hash
from controlplane.store.types import UtcDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Runs whose history is chained per statement batch.
CHUNK = 200

_runs = sa.table("runs", sa.column("id"), sa.column("last_hash"))
_history = sa.table(
    "history",
    sa.column("run_id"),
    sa.column("seq"),
    sa.column("type"),
    sa.column("time", UtcDateTime()),
    sa.column("node_id"),
    sa.column("attempt"),
    sa.column("principal"),
    sa.column("data"),
    sa.column("hash"),
)


def upgrade() -> None:
    op.add_column(
        "history", sa.Column("hash", sa.String(length=64), server_default="", nullable=False)
    )
    op.add_column(
        "runs", sa.Column("last_hash", sa.String(length=64), server_default="", nullable=False)
    )
    connection = op.get_bind()
    after = ""
    while True:
        run_ids = list(
            connection.execute(
                sa.select(_runs.c.id).where(_runs.c.id > after).order_by(_runs.c.id).limit(CHUNK)
            ).scalars()
        )
        if not run_ids:
            return
        _chain(connection, run_ids)
        after = run_ids[-1]


def _chain(connection: sa.Connection, run_ids: list[str]) -> None:
    """Hash the histories of `run_ids` in seq order and record each run's last hash."""
    query = (
        sa.select(_history)
        .where(_history.c.run_id.in_(run_ids))
        .order_by(_history.c.run_id, _history.c.seq)
    )
    events: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    for run_id, rows in groupby(connection.execute(query), key=lambda r: r.run_id):
        previous = GENESIS
        for row in rows:
            previous = row_hash(previous, row)
            events.append({"r": run_id, "s": row.seq, "h": previous})
        heads.append({"r": run_id, "h": previous})
    if events:
        connection.execute(
            sa.update(_history)
            .where(_history.c.run_id == sa.bindparam("r"), _history.c.seq == sa.bindparam("s"))
            .values(hash=sa.bindparam("h")),
            events,
        )
    if heads:
        connection.execute(
            sa.update(_runs)
            .where(_runs.c.id == sa.bindparam("r"))
            .values(last_hash=sa.bindparam("h")),
            heads,
        )


def downgrade() -> None:
    op.drop_column("runs", "last_hash")
    op.drop_column("history", "hash")
