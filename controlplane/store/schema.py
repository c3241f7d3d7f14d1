"""The tables. Migrations in `migrations/` create them; this module is what code queries.

A test compares the two (alembic autogenerate must find no difference).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from controlplane.store.types import UtcDateTime

metadata = MetaData()

definitions = Table(
    "definitions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    # Registration order within (namespace, name): "latest" is the highest active one.
    Column("sequence", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    # The serialized surefoot.v1.WorkflowDefinition: the stored form is the protobuf.
    Column("body", LargeBinary, nullable=False),
    Column("deprecated", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("namespace", "name", "version", name="uq_definitions_version"),
    UniqueConstraint("namespace", "name", "sequence", name="uq_definitions_sequence"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("definition_id", Integer, ForeignKey("definitions.id"), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=False),
    Column("status", String(32), nullable=False),
    # NULLs are distinct in a unique constraint on both databases: runs without one coexist.
    Column("request_id", String(200), nullable=True),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=True),
    # The engine's state of the run (steps, attempts, outputs) as JSON; a projection of history.
    Column("state", Text, nullable=False),
    Column("current_node", String(200), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("waiting_for", Text, nullable=True),
    Column("waiting_since", UtcDateTime(), nullable=True),
    # The seq of the last history event: appending takes last_seq + 1 under the run's row lock.
    Column("last_seq", BigInteger, nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    UniqueConstraint("namespace", "request_id", name="uq_runs_request_id"),
    Index("ix_runs_namespace_created", "namespace", "created_at", "id"),
    Index("ix_runs_namespace_status", "namespace", "status"),
    Index("ix_runs_definition", "definition_id", "status"),
)

history = Table(
    "history",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("time", UtcDateTime(), nullable=False),
    Column("node_id", String(200), nullable=False, server_default=""),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("principal", String(200), nullable=False, server_default=""),
    Column("data", Text, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    # "<run id>:<node id>:<attempt>": a late result names its run even after the row is gone.
    Column("id", String(300), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("node_id", String(200), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("step_type", String(200), nullable=False),
    Column("step_version", String(100), nullable=False),
    Column("idempotency_key", String(300), nullable=False),
    Column("input", Text, nullable=False),
    # 'ready' (claimable once available_at has passed) or 'leased'.
    Column("status", String(16), nullable=False),
    Column("available_at", UtcDateTime(), nullable=False),
    Column("timeout_seconds", Integer, nullable=False, server_default=text("0")),
    Column("session_id", String(64), nullable=True),
    Column("worker_id", String(300), nullable=True),
    Column("leased_at", UtcDateTime(), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("traceparent", String(64), nullable=False, server_default=""),
    Index(
        "ix_tasks_ready",
        "namespace",
        "step_type",
        "available_at",
        postgresql_where=text("status = 'ready'"),
        sqlite_where=text("status = 'ready'"),
    ),
    Index(
        "ix_tasks_leased",
        "lease_expires_at",
        postgresql_where=text("status = 'leased'"),
        sqlite_where=text("status = 'leased'"),
    ),
    Index("ix_tasks_run", "run_id"),
)

step_types = Table(
    "step_types",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("version", String(100), primary_key=True),
    Column("idempotency", String(16), nullable=False),
    # surefoot.v1.RetryPolicy in its JSON mapping.
    Column("retry", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("updated_at", UtcDateTime(), nullable=False),
)
