"""runs for live tables: changes found by time, run ids ordered bytewise

A watcher of a runs table re-reads, as a safety net, the runs of its namespace that changed
since its last look: (namespace, updated_at, id) answers that in the rows that changed. On
PostgreSQL the run id column gets the "C" collation, so that a run id prefix is the range
[prefix, next prefix) of the primary key's index whatever the database's own collation (a
linguistic one may ignore the dashes of a uuid and so break the range); ids are lower-case
hex and dashes, for which bytewise order is the natural one.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE runs ALTER COLUMN id TYPE VARCHAR(36) COLLATE "C"')
    op.create_index("ix_runs_namespace_updated", "runs", ["namespace", "updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_namespace_updated", table_name="runs")
    if op.get_bind().dialect.name == "postgresql":
        op.execute('ALTER TABLE runs ALTER COLUMN id TYPE VARCHAR(36) COLLATE "default"')
