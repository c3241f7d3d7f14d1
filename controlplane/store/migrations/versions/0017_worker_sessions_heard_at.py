"""worker_sessions.heard_at: when the worker last sent anything on its stream

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("worker_sessions", sa.Column("heard_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_sessions") as batch:
        batch.drop_column("heard_at")
