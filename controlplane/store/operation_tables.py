"""The tables of durable operations: a redrive of an incident's dead letters, or an action
(cancel, abandon, pause, resume, fork) over the runs a filter selects.

An operation is a row; each dead letter or run it selected is an item row, so that what was
done, what it led to and what is left are counted exactly from the database, and a control
plane that restarts (or another one) resumes where the last one stopped.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from controlplane.store.types import UtcDateTime


def define_tables(metadata: MetaData) -> tuple[Table, Table]:
    """`operations` and `operation_items` on `metadata` (schema.py's: import them from there)."""
    return _operations(metadata), _operation_items(metadata)


def _operations(metadata: MetaData) -> Table:
    return Table(
        "operations",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("namespace", String(200), nullable=False),
        # "redrive", or a run action: "pause-runs", "fork-runs", ...
        Column("kind", String(32), nullable=False),
        # RUNNING, COMPLETED or CANCELLED.
        Column("state", String(16), nullable=False),
        # NULLs are distinct in a unique constraint: operations without one coexist.
        Column("request_id", String(200), nullable=True),
        Column("created_by", String(300), nullable=False),
        Column("comment", Text, nullable=False, server_default=""),
        # JSON: the selection as requested (filter, run ids, limit).
        Column("selection", Text, nullable=False),
        # Run actions: JSON of the RunAction (type, a fork's node and input), and of the plan
        # as selected (what a dry run said at the start; items change after, it does not).
        Column("action", Text, nullable=True),
        Column("plan", Text, nullable=True),
        Column("rate_per_second", Float, nullable=False),
        Column("include_unsafe", Boolean, nullable=False),
        # The token bucket shared by every control plane: the earliest time the next item may
        # be retried. Advanced under the row's lock, so that two control planes make one rate.
        Column("next_at", UtcDateTime(), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        # Set once no item is left to retry or to follow.
        Column("finished_at", UtcDateTime(), nullable=True),
        Column("cancelled_by", String(300), nullable=True),
        Column("cancelled_at", UtcDateTime(), nullable=True),
        Column("cancel_reason", Text, nullable=True),
        UniqueConstraint("namespace", "request_id", name="uq_operations_request_id"),
        Index("ix_operations_namespace_created", "namespace", "created_at", "id"),
        # What every control plane's runner looks for on each tick.
        Index(
            "ix_operations_unfinished",
            "id",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
    )


def _operation_items(metadata: MetaData) -> Table:
    """One row per dead letter (or run) an operation selected, in the order it acts (`seq`).

    state: PENDING, EXCLUDED (idempotency none), RETRIED (the step runs again), SUCCEEDED,
    FAILED_AGAIN, NOT_RETRIED (no longer that dead letter when its turn came), CANCELLED,
    INTERRUPTED (the run ended otherwise after the retry). A run action's items: PENDING,
    APPLIED, NOT_APPLICABLE (`reason` says why), CANCELLED; their node, step and attempts
    columns are empty.
    """
    return Table(
        "operation_items",
        metadata,
        Column("operation_id", String(36), primary_key=True),
        Column("run_id", String(36), primary_key=True),
        Column("seq", BigInteger, nullable=False),
        Column("node_id", String(200), nullable=False),
        Column("step_type", String(200), nullable=False),
        Column("step_version", String(100), nullable=False),
        Column("idempotency", String(16), nullable=False),
        # The dead letter's attempts when selected: a later dead letter of the same step (it
        # was retried and gave up again meanwhile) is another one, which this item never retries.
        Column("attempts", Integer, nullable=False),
        Column("state", String(16), nullable=False),
        # A control plane claimed it for retrying until then; past it, another may.
        Column("claimed_until", UtcDateTime(), nullable=True),
        Column("retried_at", UtcDateTime(), nullable=True),
        Column("settled_at", UtcDateTime(), nullable=True),
        # FAILED_AGAIN: what it failed with; NOT_RETRIED and INTERRUPTED: why.
        Column("error_type", String(200), nullable=True),
        Column("error_message", Text, nullable=True),
        Column("error_signature", String(300), nullable=True),
        Column("reason", Text, nullable=True),
        # Run actions: the run's workflow version, and the run a fork started.
        Column("workflow_name", String(200), nullable=True),
        Column("workflow_version", String(100), nullable=True),
        Column("fork_run_id", String(36), nullable=True),
        Index("ix_operation_items_state", "operation_id", "state", "seq"),
    )
