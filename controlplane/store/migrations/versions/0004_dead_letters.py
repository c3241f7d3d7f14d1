"""dead letters

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("workflow_name", sa.String(length=200), nullable=False),
        sa.Column("workflow_version", sa.String(length=100), nullable=False),
        sa.Column("step_type", sa.String(length=200), nullable=False),
        sa.Column("error_type", sa.String(length=200), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("compensation", sa.Boolean(), nullable=False),
        sa.Column("dead_lettered_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(
        "ix_dead_letters_group",
        "dead_letters",
        ["namespace", "workflow_name", "step_type", "error_type", "dead_lettered_at"],
    )
    op.create_index(
        "ix_dead_letters_namespace_time",
        "dead_letters",
        ["namespace", "dead_lettered_at", "run_id"],
    )
    # Runs already waiting on an operator before this revision: their steps live in the
    # runs.state JSON, which a migration should not parse; they show up once decided again.


def downgrade() -> None:
    op.drop_index("ix_dead_letters_namespace_time", table_name="dead_letters")
    op.drop_index("ix_dead_letters_group", table_name="dead_letters")
    op.drop_table("dead_letters")
