"""attempts: one row per finished attempt, read by GetRun instead of the whole history

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 1000
_OUTCOMES = {
    "ATTEMPT_COMPLETED": "COMPLETED",
    "ATTEMPT_FAILED": "FAILED",
    "ATTEMPT_LOST": "LOST",
}


def upgrade() -> None:
    table = op.create_table(
        "attempts",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=300), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "node_id", "attempt"),
    )
    # Runs from before this revision: their attempts are in history only; project them once.
    rows = _from_history(op.get_bind())
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            op.bulk_insert(table, batch)
            batch = []
    if batch:
        op.bulk_insert(table, batch)


def _from_history(connection: sa.Connection) -> Iterator[dict[str, Any]]:
    """The attempts of every run as history tells them, one run at a time."""
    history = sa.table(
        "history",
        sa.column("run_id"),
        sa.column("seq"),
        sa.column("type"),
        sa.column("time", UtcDateTime()),
        sa.column("node_id"),
        sa.column("attempt"),
        sa.column("principal"),
        sa.column("data"),
    )
    query = (
        sa.select(history)
        .where(history.c.type.in_(["ATTEMPT_STARTED", *_OUTCOMES]))
        .order_by(history.c.run_id, history.c.seq)
    )
    current = ""
    attempts: dict[tuple[str, int], dict[str, Any]] = {}
    for event in connection.execute(query):
        if event.run_id != current:
            yield from attempts.values()
            current, attempts = event.run_id, {}
        data = orjson.loads(event.data)
        key = (event.node_id, event.attempt)
        row = attempts.setdefault(key, _empty(event.run_id, event.node_id, event.attempt))
        if event.type == "ATTEMPT_STARTED":
            row["worker_id"] = str(data.get("worker_id", ""))
            row["started_at"] = event.time
            continue
        if not row["worker_id"]:
            row["worker_id"] = event.principal
        row["outcome"] = _OUTCOMES[event.type]
        row["ended_at"] = event.time
        error = data.get("error")
        if event.type == "ATTEMPT_LOST":
            error = {"type": "AttemptLost", "message": data.get("reason")}
        row["error"] = orjson.dumps(error).decode() if error else None
    yield from attempts.values()


def _empty(run_id: str, node_id: str, attempt: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "node_id": node_id,
        "attempt": attempt,
        "worker_id": "",
        "started_at": None,
        "ended_at": None,
        "outcome": "RUNNING",
        "error": None,
    }


def downgrade() -> None:
    op.drop_table("attempts")
