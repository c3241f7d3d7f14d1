"""write_requests: the answer each write RPC gave, by its caller's request id

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "write_requests",
        sa.Column("namespace", sa.String(length=200), nullable=False),
        sa.Column("request_id", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=100), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("principal", sa.String(length=300), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "request_id"),
    )
    op.create_index("ix_write_requests_created", "write_requests", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_write_requests_created", table_name="write_requests")
    op.drop_table("write_requests")
