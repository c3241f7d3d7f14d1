"""waits approvals timers events

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "approvals",
        sa.Column("id", sa.String(length=300), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("workflow_version", sa.String(length=100), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("shown", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("deadline", UtcDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=300), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("by_timeout", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("escalated_to", sa.Text(), server_default="[]", nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_approvals_pending", ["namespace", "status", "requested_at", "id"], unique=False
        )

    op.create_table(
        "event_waits",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("correlation_key", sa.String(length=500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "node_id"),
    )
    with op.batch_alter_table("event_waits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_waits_key", ["namespace", "event_name", "correlation_key"], unique=False
        )

    op.create_table(
        "events",
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("correlation_key", sa.String(length=500), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_to", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("namespace", "id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_key",
            ["namespace", "event_name", "correlation_key", "created_at"],
            unique=False,
        )

    op.create_table(
        "timers",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "node_id", "kind"),
    )
    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.create_index("ix_timers_due", ["due_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("timers", schema=None) as batch_op:
        batch_op.drop_index("ix_timers_due")

    op.drop_table("timers")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_key")

    op.drop_table("events")
    with op.batch_alter_table("event_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_event_waits_key")

    op.drop_table("event_waits")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index("ix_approvals_pending")

    op.drop_table("approvals")
