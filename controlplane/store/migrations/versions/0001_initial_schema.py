"""initial schema

Revision ID: 0001
Revises: (none)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "definitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", "name", "sequence", name="uq_definitions_sequence"),
        sa.UniqueConstraint("namespace", "name", "version", name="uq_definitions_version"),
    )
    op.create_table(
        "history",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("node_id", sa.String(length=200), server_default="", nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("principal", sa.String(length=200), server_default="", nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "seq"),
    )
    op.create_table(
        "step_types",
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("idempotency", sa.String(length=16), nullable=False),
        sa.Column("retry", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "name", "version"),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("step_type", sa.String(length=200), nullable=False),
        sa.Column("step_version", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("available_at", UtcDateTime(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("worker_id", sa.String(length=300), nullable=True),
        sa.Column("leased_at", UtcDateTime(), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime(), nullable=True),
        sa.Column("traceparent", sa.String(length=64), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_leased",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'leased'"),
            sqlite_where=sa.text("status = 'leased'"),
        )
        batch_op.create_index(
            "ix_tasks_ready",
            ["namespace", "step_type", "available_at"],
            unique=False,
            postgresql_where=sa.text("status = 'ready'"),
            sqlite_where=sa.text("status = 'ready'"),
        )
        batch_op.create_index("ix_tasks_run", ["run_id"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("workflow_version", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("current_node", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("waiting_for", sa.Text(), nullable=True),
        sa.Column("waiting_since", UtcDateTime(), nullable=True),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["definitions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("namespace", "request_id", name="uq_runs_request_id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_definition", ["definition_id", "status"], unique=False)
        batch_op.create_index(
            "ix_runs_namespace_created", ["namespace", "created_at", "id"], unique=False
        )
        batch_op.create_index("ix_runs_namespace_status", ["namespace", "status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_namespace_status")
        batch_op.drop_index("ix_runs_namespace_created")
        batch_op.drop_index("ix_runs_definition")

    op.drop_table("runs")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_run")
        batch_op.drop_index(
            "ix_tasks_ready",
            postgresql_where=sa.text("status = 'ready'"),
            sqlite_where=sa.text("status = 'ready'"),
        )
        batch_op.drop_index(
            "ix_tasks_leased",
            postgresql_where=sa.text("status = 'leased'"),
            sqlite_where=sa.text("status = 'leased'"),
        )

    op.drop_table("tasks")
    op.drop_table("step_types")
    op.drop_table("history")
    op.drop_table("definitions")
