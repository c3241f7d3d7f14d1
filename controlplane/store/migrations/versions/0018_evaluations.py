"""eval_sets and evaluations; definitions.requires_eval

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from controlplane.store.types import UtcDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Versions registered before this revision cannot carry require_eval: false is right.
    op.add_column(
        "definitions",
        sa.Column("requires_eval", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "eval_sets",
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"]),
        sa.PrimaryKeyConstraint("definition_id"),
    )
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("workflow_name", sa.String(200), nullable=False),
        sa.Column("workflow_version", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("against_version", sa.String(100), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("cases", sa.Integer(), nullable=False),
        sa.Column("passed_cases", sa.Integer(), nullable=False),
        sa.Column("regressions", sa.Integer(), nullable=False),
        sa.Column("eval_set_hash", sa.String(64), nullable=False),
        sa.Column("recorded_by", sa.String(300), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("case_results", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["definition_id"], ["definitions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_evaluations_workflow",
        "evaluations",
        ["namespace", "workflow_name", "recorded_at", "id"],
    )
    op.create_index("ix_evaluations_passed", "evaluations", ["definition_id", "passed"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_passed", table_name="evaluations")
    op.drop_index("ix_evaluations_workflow", table_name="evaluations")
    op.drop_table("evaluations")
    op.drop_table("eval_sets")
    if op.get_bind().dialect.name == "sqlite":
        # A batch would copy definitions to a new table and drop the old one, which the runs
        # referencing it forbid once there are any; SQLite drops a plain column in place.
        op.execute("ALTER TABLE definitions DROP COLUMN requires_eval")
    else:
        op.drop_column("definitions", "requires_eval")
