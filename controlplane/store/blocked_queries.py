"""What GetRun reads, beside the run and its tasks, to say what a run waits for.

Each read is by primary key or a primary-key prefix, and only for what the run's state says
it waits on: a run at a task pays nothing here but the declared versions of that task's
step types and the worker streams that declare them.

Which workers are connected is read from `worker_sessions`, where every control plane of
the database keeps its own streams and confirms them: the answer is the same whichever
control plane is asked (law 9), and a stream whose control plane stopped confirming it
(killed, cut off from the database) no longer counts once its row expired.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from controlplane.engine import state as s
from controlplane.engine.kinds import NodeKind
from controlplane.store.bulk import among
from controlplane.store.codec import to_datetime
from controlplane.store.schema import approvals, dead_letters, step_types
from controlplane.store.worker_sessions import LiveWorker, live_workers


@dataclass(frozen=True)
class BlockingRows:
    """The rows behind a run's blockers."""

    # Pending approvals by id (the approval step's, or reviewed AI step's, idempotency key).
    approvals: dict[str, Row[Any]] = field(default_factory=dict)
    # The run's dead letter, while it needs attention.
    dead_letter: Row[Any] | None = None
    # Versions of each step type the run waits to run, as declared in the namespace.
    declared_versions: dict[str, list[str]] = field(default_factory=dict)
    # Connected streams (any control plane's) declaring one of those step types, with the
    # tasks each holds.
    workers: list[LiveWorker] = field(default_factory=list)


def blocking_rows(
    connection: Connection,
    namespace: str,
    run_id: str,
    steps: dict[str, s.StepState],
    now: float,
) -> BlockingRows:
    """Read what the open steps of one run (its state's `steps`) wait on, `now` (epoch
    seconds: which worker streams are still confirmed then)."""
    approval_ids = [
        step.idempotency_key
        for step in steps.values()
        # An AI node waiting is waiting on its human review: an approval like any other.
        if step.status == s.STEP_WAITING and step.kind in (NodeKind.APPROVAL, NodeKind.AI)
    ]
    wanted_types = sorted(
        {
            step.step_type
            for step in steps.values()
            if step.status in s.OPEN_STEP and step.kind in s.WORKER_KINDS
        }
    )
    found_approvals: dict[str, Row[Any]] = {}
    if approval_ids:
        query = select(approvals).where(
            approvals.c.namespace == namespace, among(connection, approvals.c.id, approval_ids)
        )
        found_approvals = {row.id: row for row in connection.execute(query)}
    dead_letter = None
    if any(step.status == s.DEAD_LETTERED for step in steps.values()):
        dead_letter = connection.execute(
            select(dead_letters).where(
                dead_letters.c.run_id == run_id, dead_letters.c.namespace == namespace
            )
        ).first()
    declared: dict[str, list[str]] = {}
    workers: list[LiveWorker] = []
    if wanted_types:
        workers = live_workers(
            connection, namespace, to_datetime(now), wanted_types, count_in_flight=True
        )
        query = (
            select(step_types.c.name, step_types.c.version)
            .where(
                step_types.c.namespace == namespace,
                among(connection, step_types.c.name, wanted_types),
            )
            .order_by(step_types.c.name, step_types.c.version)
        )
        for row in connection.execute(query):
            declared.setdefault(row.name, []).append(row.version)
    return BlockingRows(found_approvals, dead_letter, declared, workers)
