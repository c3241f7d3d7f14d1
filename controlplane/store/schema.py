"""The tables. Migrations in `migrations/` create them; this module is what code queries.

A test compares the two (alembic autogenerate must find no difference).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
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

from controlplane.store import evaluations as evaluation_store
from controlplane.store import operation_tables, run_forks
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
    # Who retired the version, when and why: an operator deciding what may go needs to know.
    Column("deprecated_by", String(300), nullable=True),
    Column("deprecated_at", UtcDateTime(), nullable=True),
    Column("deprecation_reason", Text, nullable=True),
    # The definition's require_eval, where the "latest" lookup can filter on it: such a
    # version is latest only once an evaluation of it passed (store/evaluations.py).
    Column("requires_eval", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("namespace", "name", "version", name="uq_definitions_version"),
    UniqueConstraint("namespace", "name", "sequence", name="uq_definitions_sequence"),
)

runs = Table(
    "runs",
    metadata,
    # Sorted bytewise on PostgreSQL too (COLLATE "C", migration 0016): a run id prefix is a
    # range of the primary key's index.
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
    # The hash of the last history event (controlplane/audit/chain.py): the next event chains
    # from it without reading history, and a cut or extended history shows against it.
    Column("last_hash", String(64), nullable=False, server_default=""),
    Column("trace_id", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("closed_at", UtcDateTime(), nullable=True),
    UniqueConstraint("namespace", "request_id", name="uq_runs_request_id"),
    Index("ix_runs_namespace_created", "namespace", "created_at", "id"),
    Index("ix_runs_namespace_status", "namespace", "status"),
    Index("ix_runs_definition", "definition_id", "status"),
    # What changed lately in a namespace: the safety-net re-read of live runs tables.
    Index("ix_runs_namespace_updated", "namespace", "updated_at", "id"),
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
    # sha256 over the previous event's hash and this event's columns: the run's hash chain.
    Column("hash", String(64), nullable=False, server_default=""),
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
    # The latest progress details the worker sent with a heartbeat, as sent.
    Column("heartbeat_encoding", String(100), nullable=True),
    Column("heartbeat_details", LargeBinary, nullable=True),
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

# Durable timers: sleeps, approval deadlines, event-wait timeouts (retry delays are the
# `available_at` of their task). A waiting run costs these rows and nothing in memory.
timers = Table(
    "timers",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("node_id", String(200), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Index("ix_timers_due", "due_at"),
)

approvals = Table(
    "approvals",
    metadata,
    # "<run id>:<node id>"
    Column("id", String(300), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("run_id", String(36), nullable=False),
    Column("node_id", String(200), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=False),
    Column("title", Text, nullable=False),
    # JSON list of principals and "group:<name>" entries; empty: anyone authenticated.
    Column("approvers", Text, nullable=False),
    # JSON object: exactly what the approver is shown.
    Column("shown", Text, nullable=False),
    # PENDING, APPROVED, REJECTED or WITHDRAWN.
    Column("status", String(16), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("deadline", UtcDateTime(), nullable=True),
    Column("decided_by", String(300), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("comment", Text, nullable=True),
    Column("by_timeout", Boolean, nullable=False, server_default=text("false")),
    Column("escalated_to", Text, nullable=False, server_default="[]"),
    Index("ix_approvals_pending", "namespace", "status", "requested_at", "id"),
)

# Runs waiting at a wait_event node, found by (namespace, event name, correlation key).
event_waits = Table(
    "event_waits",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("node_id", String(200), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("event_name", String(200), nullable=False),
    Column("correlation_key", String(500), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_event_waits_key", "namespace", "event_name", "correlation_key"),
)

# Every event sent: delivered ones (for idempotent SendEvent retries) and ones kept for a run
# that has not reached its wait yet (delivered_to is NULL).
events = Table(
    "events",
    metadata,
    Column("namespace", String(200), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("event_name", String(200), nullable=False),
    Column("correlation_key", String(500), nullable=False),
    Column("payload", Text, nullable=False),
    # The principal that sent it, credited when a wait opened later takes it.
    Column("sent_by", String(200), nullable=False, server_default="system"),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # JSON list of run ids it was delivered to; NULL while it waits for one.
    Column("delivered_to", Text, nullable=True),
    Index("ix_events_key", "namespace", "event_name", "correlation_key", "created_at"),
)


# What a connector's call to a non-idempotent API did, per idempotency key: a retry after a
# crash returns the recorded outcome instead of calling again.
connector_outcomes = Table(
    "connector_outcomes",
    metadata,
    Column("idempotency_key", String(300), primary_key=True),
    Column("connector", String(100), nullable=False),
    # STARTED: the call may have reached the API; COMPLETED: `outcome` holds its result.
    Column("state", String(16), nullable=False),
    # JSON: the step output the call produced.
    Column("outcome", Text, nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
)


# The projection operators triage from: one row per run that is NEEDS_ATTENTION, for the
# dead-lettered step it waits on. Written in the run's transaction (law 1); grouped by
# workflow, step type and error type so that an incident is one row with a count.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("run_id", String(36), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("node_id", String(200), nullable=False),
    Column("workflow_name", String(200), nullable=False),
    Column("workflow_version", String(100), nullable=False),
    Column("step_type", String(200), nullable=False),
    Column("error_type", String(200), nullable=False),
    Column("error_message", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("compensation", Boolean, nullable=False),
    Column("dead_lettered_at", UtcDateTime(), nullable=False),
    Column("step_version", String(100), nullable=False, server_default=""),
    # The step type's declaration ("key", "natural", "none"): a redrive leaves `none` alone
    # unless told otherwise.
    Column("idempotency", String(16), nullable=False, server_default=""),
    # The message with ids, numbers, hex and times normalised (store/error_signatures.py),
    # computed when the row is written: grouping reads this index, never history.
    Column("error_signature", String(300), nullable=False, server_default=""),
    Index(
        "ix_dead_letters_signature",
        "namespace",
        "workflow_name",
        "workflow_version",
        "step_type",
        "step_version",
        "error_type",
        "error_signature",
        "dead_lettered_at",
    ),
    Index("ix_dead_letters_namespace_time", "namespace", "dead_lettered_at", "run_id"),
)

# Durable operations over many runs (redrives) and their items, declared in their own
# module on this metadata.
operations, operation_items = operation_tables.define_tables(metadata)

# Which run was forked from which (ForkRun), declared with its queries.
forks = run_forks.define_table(metadata)

# Eval sets of versions and the evaluations recorded (EvaluationService), declared with their
# queries.
eval_sets, evaluations = evaluation_store.define_tables(metadata)


# What a write RPC answered, by its caller's request id (store/write_requests.py): a call
# repeated after a client-side timeout gets the first answer instead of acting twice.
write_requests = Table(
    "write_requests",
    metadata,
    # "" for requests outside any namespace (credentials).
    Column("namespace", String(200), primary_key=True),
    Column("request_id", String(200), primary_key=True),
    # The RPC's name ("CancelRun"), and sha256 of the principal and the request without its id.
    Column("method", String(100), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("principal", String(300), nullable=False),
    # The serialized response message the first call was answered with.
    Column("response", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_write_requests_created", "created_at"),
)


# Credentials created through the API (CredentialService) or by `surefoot credentials create
# --database-url`: a bearer token kept as its sha256, or a client certificate's subject CN.
# Rows are never deleted: a revoked credential stays, so that the audit can name it.
credentials = Table(
    "credentials",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("principal", String(200), nullable=False),
    # "token" (secret_sha256 set) or "certificate" (subject set).
    Column("kind", String(16), nullable=False),
    Column("secret_sha256", String(71), nullable=True),
    Column("subject", String(300), nullable=True),
    # JSON {namespace: [role, ...]} as given ("*": every namespace).
    Column("roles", Text, nullable=False),
    # JSON list of group names, as approvers name them without the "group:" prefix.
    Column("groups", Text, nullable=False, server_default="[]"),
    # JSON list of step types a worker credential is limited to; NULL: any.
    Column("step_types", Text, nullable=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_by", String(300), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_by", String(300), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    UniqueConstraint("secret_sha256", name="uq_credentials_secret"),
    Index("ix_credentials_subject", "subject"),
)

# Who changed what outside runs' histories (credentials created and revoked), appended in the
# transaction of the change itself.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("time", UtcDateTime(), nullable=False),
    Column("principal", String(300), nullable=False),
    Column("action", String(100), nullable=False),
    # JSON object: what the action was about (never a secret).
    Column("details", Text, nullable=False),
)

# The worker streams connected to every control plane of the database, so that any of them
# can list them all (law 9). A control plane inserts a row when a stream's Hello is accepted
# and deletes it when the stream closes, both in its committer's transactions, and pushes
# `expires_at` forward at a coarse interval while the stream stays open: a row past it belongs
# to a control plane that stopped confirming its streams (killed, crashed, cut off from the
# database) and is no longer shown as connected. The id is the stream's lease holder
# (tasks.session_id), never the secret session id the worker resumes with.
worker_sessions = Table(
    "worker_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("namespace", String(200), nullable=False),
    Column("worker_id", String(300), nullable=False),
    Column("principal", String(300), nullable=False),
    # JSON list of [step type, version] pairs the worker declared.
    Column("step_types", Text, nullable=False),
    # The window the worker granted (Credit messages add up).
    Column("credit", Integer, nullable=False, server_default=text("0")),
    Column("draining", Boolean, nullable=False, server_default=text("false")),
    # host:pid of the control plane holding the stream, for an operator looking for its logs.
    Column("control_plane", String(300), nullable=False),
    # The holding control plane's lease length: a leased task whose expiry is more than this
    # after its lease began was extended by a heartbeat, at expiry minus this.
    Column("lease_seconds", Float, nullable=True),
    Column("connected_at", UtcDateTime(), nullable=False),
    Column("seen_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # When the worker last sent anything on the stream, as of the holding control plane's
    # last confirmation (kept in memory per message, written with the confirmation).
    Column("heard_at", UtcDateTime(), nullable=True),
    Index("ix_worker_sessions_namespace", "namespace", "worker_id", "id"),
    Index("ix_worker_sessions_expires", "expires_at"),
)
