"""dead letters carry their step version, idempotency and error signature; durable operations

Grouping dead letters by (workflow and version, step type and version, error type, error
signature) reads one index: the signature is computed when a dead letter is written, and the
rows already there get theirs here (with their step's version and idempotency, read from the
run's state). `operations` and `operation_items` hold durable redrives.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from controlplane.store.error_signatures import error_signature
from controlplane.store.types import UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_dead_letters = sa.table(
    "dead_letters",
    sa.column("run_id"),
    sa.column("node_id"),
    sa.column("error_message"),
    sa.column("step_version"),
    sa.column("idempotency"),
    sa.column("error_signature"),
)
_runs = sa.table("runs", sa.column("id"), sa.column("state"))


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(
            sa.Column("step_version", sa.String(length=100), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("idempotency", sa.String(length=16), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("error_signature", sa.String(length=300), nullable=False, server_default="")
        )
    _backfill(op.get_bind())
    op.drop_index("ix_dead_letters_group", table_name="dead_letters")
    op.create_index(
        "ix_dead_letters_signature",
        "dead_letters",
        [
            "namespace",
            "workflow_name",
            "workflow_version",
            "step_type",
            "step_version",
            "error_type",
            "error_signature",
            "dead_lettered_at",
        ],
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=300), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False, server_default=""),
        sa.Column("selection", sa.Text(), nullable=False),
        sa.Column("rate_per_second", sa.Float(), nullable=False),
        sa.Column("include_unsafe", sa.Boolean(), nullable=False),
        sa.Column("next_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=300), nullable=True),
        sa.Column("cancelled_at", UtcDateTime(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", "request_id", name="uq_operations_request_id"),
    )
    op.create_index(
        "ix_operations_namespace_created", "operations", ["namespace", "created_at", "id"]
    )
    op.create_index(
        "ix_operations_unfinished",
        "operations",
        ["id"],
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    )
    op.create_table(
        "operation_items",
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("step_type", sa.String(length=200), nullable=False),
        sa.Column("step_version", sa.String(length=100), nullable=False),
        sa.Column("idempotency", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_until", UtcDateTime(), nullable=True),
        sa.Column("retried_at", UtcDateTime(), nullable=True),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.Column("error_type", sa.String(length=200), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_signature", sa.String(length=300), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("operation_id", "run_id"),
    )
    op.create_index("ix_operation_items_state", "operation_items", ["operation_id", "state", "seq"])


def _backfill(connection: sa.Connection) -> None:
    """Signature, step version and idempotency of the dead letters already there."""
    query = sa.select(
        _dead_letters.c.run_id,
        _dead_letters.c.node_id,
        _dead_letters.c.error_message,
        _runs.c.state,
    ).select_from(_dead_letters.outerjoin(_runs, _runs.c.id == _dead_letters.c.run_id))
    rows = list(connection.execute(query))
    for row in rows:
        saved = orjson.loads(row.state) if row.state else {}
        # The step the run waits on an operator for (a compensation's key is not its node's).
        step = saved.get("steps", {}).get(saved.get("attention") or row.node_id, {})
        connection.execute(
            _dead_letters.update()
            .where(_dead_letters.c.run_id == row.run_id)
            .values(
                error_signature=error_signature(row.error_message or ""),
                step_version=str(step.get("step_version", ""))[:100],
                idempotency=str(step.get("idempotency", ""))[:16],
            )
        )


def downgrade() -> None:
    op.drop_index("ix_operation_items_state", table_name="operation_items")
    op.drop_table("operation_items")
    op.drop_index("ix_operations_unfinished", table_name="operations")
    op.drop_index("ix_operations_namespace_created", table_name="operations")
    op.drop_table("operations")
    op.drop_index("ix_dead_letters_signature", table_name="dead_letters")
    op.create_index(
        "ix_dead_letters_group",
        "dead_letters",
        ["namespace", "workflow_name", "step_type", "error_type", "dead_lettered_at"],
    )
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("error_signature")
        batch.drop_column("idempotency")
        batch.drop_column("step_version")
