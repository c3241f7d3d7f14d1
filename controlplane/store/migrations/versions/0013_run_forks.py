"""run_forks: which run was forked from which, at which node

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_forks",
        sa.Column("child_run_id", sa.String(length=36), nullable=False),
        sa.Column("parent_run_id", sa.String(length=36), nullable=False),
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("principal", sa.String(length=300), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("child_run_id"),
    )
    op.create_index("ix_run_forks_parent", "run_forks", ["parent_run_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_run_forks_parent", table_name="run_forks")
    op.drop_table("run_forks")
