"""worker_sessions: the worker streams of every control plane, for ListWorkers

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "worker_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("worker_id", sa.String(length=300), nullable=False),
        sa.Column("principal", sa.String(length=300), nullable=False),
        sa.Column("step_types", sa.Text(), nullable=False),
        sa.Column("credit", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("draining", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("control_plane", sa.String(length=300), nullable=False),
        sa.Column("lease_seconds", sa.Float(), nullable=True),
        sa.Column("connected_at", UtcDateTime(), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_worker_sessions_namespace", "worker_sessions", ["namespace", "worker_id", "id"]
    )
    op.create_index("ix_worker_sessions_expires", "worker_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_worker_sessions_expires", table_name="worker_sessions")
    op.drop_index("ix_worker_sessions_namespace", table_name="worker_sessions")
    op.drop_table("worker_sessions")
