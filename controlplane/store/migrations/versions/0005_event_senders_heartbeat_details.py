"""event senders, heartbeat details

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Events kept before this revision were credited to "system" when delivered: still so.
    op.add_column(
        "events",
        sa.Column("sent_by", sa.String(length=200), server_default="system", nullable=False),
    )
    op.add_column("tasks", sa.Column("heartbeat_encoding", sa.String(length=100), nullable=True))
    op.add_column("tasks", sa.Column("heartbeat_details", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("heartbeat_details")
        batch.drop_column("heartbeat_encoding")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("sent_by")
