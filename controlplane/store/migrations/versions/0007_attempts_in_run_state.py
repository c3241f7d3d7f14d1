"""attempts kept in the run's state: GetRun reads them with the run, and no extra row per step

Revision 0006's `attempts` table cost an insert per finished attempt in every commit; each
step's finished attempts now travel in `runs.state` (`finished_attempts`), which the commit
rewrites anyway. This folds the table into the states and drops it.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_runs = sa.table("runs", sa.column("id"), sa.column("state"))
_attempts = sa.table(
    "attempts",
    sa.column("run_id"),
    sa.column("node_id"),
    sa.column("attempt"),
    sa.column("worker_id"),
    sa.column("started_at", UtcDateTime()),
    sa.column("ended_at", UtcDateTime()),
    sa.column("outcome"),
    sa.column("error"),
)


def upgrade() -> None:
    connection = op.get_bind()
    query = sa.select(_attempts).order_by(
        _attempts.c.run_id, _attempts.c.node_id, _attempts.c.attempt
    )
    # One run at a time: the table is read as a stream, never held whole.
    for run_id, rows in groupby(connection.execute(query), key=lambda r: r.run_id):
        found = connection.execute(sa.select(_runs.c.state).where(_runs.c.id == run_id)).first()
        if found is None:
            continue
        state = orjson.loads(found.state)
        steps = state.get("steps", {})
        for row in rows:
            if row.node_id in steps:
                steps[row.node_id].setdefault("finished_attempts", []).append(_entry(row))
        _save(connection, run_id, state)
    op.drop_table("attempts")


def _entry(row: Any) -> dict[str, Any]:
    return {
        "number": row.attempt,
        "worker_id": row.worker_id,
        "started_at": row.started_at.timestamp() if row.started_at else None,
        "ended_at": row.ended_at.timestamp() if row.ended_at else None,
        "outcome": row.outcome,
        "error": orjson.loads(row.error) if row.error else None,
    }


def _save(connection: sa.Connection, run_id: str, state: dict[str, Any]) -> None:
    text = orjson.dumps(state).decode()
    connection.execute(sa.update(_runs).where(_runs.c.id == run_id).values(state=text))


def downgrade() -> None:
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
    connection = op.get_bind()
    batch: list[dict[str, Any]] = []
    for row in _from_states(connection):
        batch.append(row)
        if len(batch) >= 1000:
            op.bulk_insert(table, batch)
            batch = []
    if batch:
        op.bulk_insert(table, batch)


def _from_states(connection: sa.Connection) -> Iterator[dict[str, Any]]:
    """Attempts rows from the states, which lose their `finished_attempts` as they go."""

    def moment(value: float | None) -> datetime | None:
        return None if value is None else datetime.fromtimestamp(value, UTC)

    for run in connection.execute(sa.select(_runs)).all():
        state = orjson.loads(run.state)
        found = False
        for node_id, step in state.get("steps", {}).items():
            for a in step.pop("finished_attempts", []):
                found = True
                yield {
                    "run_id": run.id,
                    "node_id": node_id,
                    "attempt": a["number"],
                    "worker_id": a["worker_id"],
                    "started_at": moment(a["started_at"]),
                    "ended_at": moment(a["ended_at"]),
                    "outcome": a["outcome"],
                    "error": orjson.dumps(a["error"]).decode() if a["error"] else None,
                }
        if found:
            _save(connection, run.id, state)
