"""deprecation details, connector outcomes

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("definitions", sa.Column("deprecated_by", sa.String(length=300), nullable=True))
    op.add_column("definitions", sa.Column("deprecated_at", UtcDateTime(), nullable=True))
    op.add_column("definitions", sa.Column("deprecation_reason", sa.Text(), nullable=True))
    op.create_table(
        "connector_outcomes",
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("connector", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("completed_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("connector_outcomes")
    with op.batch_alter_table("definitions") as batch:
        batch.drop_column("deprecation_reason")
        batch.drop_column("deprecated_at")
        batch.drop_column("deprecated_by")
