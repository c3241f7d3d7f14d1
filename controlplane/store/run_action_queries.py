"""Selecting the runs of a bulk run action, and writing the operation that acts on them.

A run action (cancel, abandon, pause, resume, fork over the runs a filter selects) is an
operation like a redrive (operation_queries.py): a row in `operations` and one item per run
selected, worked through by the same runner. Its items keep the run's workflow version;
those the action does not apply to when selected are written settled, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, Select, select

from controlplane.store.bulk import insert_rows
from controlplane.store.codec import to_datetime
from controlplane.store.operation_queries import NOT_APPLICABLE, PENDING, RUNNING
from controlplane.store.schema import operation_items, operations, runs

# Items written per statement when an operation is created.
INSERT_CHUNK = 1000
# Rows read per round trip while a selection is streamed.
READ_CHUNK = 500


@dataclass(frozen=True)
class RunWhere:
    """Which runs of a namespace: every field given must match (empty: any)."""

    workflow_name: str = ""
    workflow_version: str = ""
    # Run statuses as stored ("RUNNING", ...).
    statuses: tuple[str, ...] = ()
    # Created at or after / before.
    created_after: datetime | None = None
    created_before: datetime | None = None
    run_id_prefix: str = ""
    run_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == RunWhere()


def selected(namespace: str, where: RunWhere, limit: int, *, with_state: bool) -> Select[Any]:
    """The runs a selection matches, oldest first (the order they are acted on); `limit` 0:
    all of them. The run's state (JSON) only `with_state`: it is the large column."""
    columns = [
        runs.c.id,
        runs.c.workflow_name,
        runs.c.workflow_version,
        runs.c.status,
        runs.c.definition_id,
    ]
    if with_state:
        columns.append(runs.c.state)
    query = select(*columns).where(runs.c.namespace == namespace)
    if where.workflow_name:
        query = query.where(runs.c.workflow_name == where.workflow_name)
    if where.workflow_version:
        query = query.where(runs.c.workflow_version == where.workflow_version)
    if where.statuses:
        query = query.where(runs.c.status.in_(sorted(set(where.statuses))))
    if where.created_after is not None:
        query = query.where(runs.c.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(runs.c.created_at < where.created_before)
    if where.run_id_prefix:
        # LIKE rather than a range on the key: under a linguistic collation a range would
        # skip ids whose dashes the collation ignores. A selection is read once, not paged.
        query = query.where(runs.c.id.startswith(where.run_id_prefix, autoescape=True))
    if where.run_ids:
        query = query.where(runs.c.id.in_(sorted(set(where.run_ids))))
    query = query.order_by(runs.c.created_at, runs.c.id)
    return query.limit(limit) if limit else query


def stream_selected(
    connection: Connection, namespace: str, where: RunWhere, limit: int, *, with_state: bool
) -> Iterator[Row[Any]]:
    """The selected runs, read a chunk at a time: a selection of 100,000 runs with their
    states is never all in memory."""
    query = selected(namespace, where, limit, with_state=with_state)
    # On the statement, not the connection: the writes that follow use a plain cursor.
    result = connection.execute(query.execution_options(yield_per=READ_CHUNK))
    try:
        yield from result
    finally:
        result.close()


@dataclass(frozen=True)
class NewRunAction:
    id: str
    namespace: str
    # "pause-runs", ...
    kind: str
    request_id: str | None
    created_by: str
    comment: str
    # JSON: the selection as requested, the action, the plan as selected.
    selection: str
    action: str
    plan: str
    rate_per_second: float
    now: float


@dataclass(frozen=True)
class SelectedRun:
    run_id: str
    workflow_name: str
    workflow_version: str
    # Why the action does not apply to it; None: it does.
    not_applicable: str | None


def create_run_action(
    connection: Connection, new: NewRunAction, selected_runs: Iterable[SelectedRun]
) -> None:
    """The operation row and one item per selected run, in selection order."""
    now = to_datetime(new.now)
    connection.execute(
        operations.insert().values(
            id=new.id,
            namespace=new.namespace,
            kind=new.kind,
            state=RUNNING,
            request_id=new.request_id,
            created_by=new.created_by,
            comment=new.comment,
            selection=new.selection,
            action=new.action,
            plan=new.plan,
            rate_per_second=new.rate_per_second,
            include_unsafe=False,
            next_at=now,
            created_at=now,
        )
    )
    chunk: list[dict[str, Any]] = []
    for seq, run in enumerate(selected_runs, start=1):
        applicable = run.not_applicable is None
        chunk.append(
            {
                "operation_id": new.id,
                "run_id": run.run_id,
                "seq": seq,
                "node_id": "",
                "step_type": "",
                "step_version": "",
                "idempotency": "",
                "attempts": 0,
                "state": PENDING if applicable else NOT_APPLICABLE,
                "settled_at": None if applicable else now,
                "reason": run.not_applicable,
                "workflow_name": run.workflow_name,
                "workflow_version": run.workflow_version,
            }
        )
        if len(chunk) == INSERT_CHUNK:
            insert_rows(connection, operation_items, chunk)
            chunk = []
    insert_rows(connection, operation_items, chunk)
