"""operations over runs: a bulk cancel, abandon, pause, resume or fork is an operation too

An operation keeps its action (and the plan it selected) beside its selection; each run it
selected is an item with the run's workflow version and, for a fork, the run it started.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operations") as batch:
        batch.add_column(sa.Column("action", sa.Text(), nullable=True))
        batch.add_column(sa.Column("plan", sa.Text(), nullable=True))
    with op.batch_alter_table("operation_items") as batch:
        batch.add_column(sa.Column("workflow_name", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("workflow_version", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("fork_run_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operation_items") as batch:
        batch.drop_column("fork_run_id")
        batch.drop_column("workflow_version")
        batch.drop_column("workflow_name")
    with op.batch_alter_table("operations") as batch:
        batch.drop_column("plan")
        batch.drop_column("action")
