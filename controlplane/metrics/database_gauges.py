"""Gauges read from the database on a schedule (law 5: nothing per waiting run in memory).

One thread runs a handful of grouped counts every `interval` seconds and keeps the answer;
the observable gauges' callbacks read that answer, so a scrape (or an OTLP export) never
waits on the database and two readers do not double the queries. Every control plane of a
database reports the same figures: dashboards take `max` over instances.

Labels are bounded: namespaces, step types, versions, statuses, kinds and error types, never
a run id, an operation id or a message. Dead-letter groups are capped at the largest
`MAX_GROUPS` (the rest are summed as error type `other`).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from sqlalchemy import Connection, Engine, func, select, text

from controlplane.engine.kinds import RunStatus
from controlplane.store.schema import (
    approvals,
    dead_letters,
    event_waits,
    operation_items,
    operations,
    runs,
    tasks,
    timers,
    worker_sessions,
)
from controlplane.store.worker_sessions import queued_step_types

log = logging.getLogger("surefoot.metrics")

# Dead-letter groups reported one by one; the rest are one `other` series per namespace.
MAX_GROUPS = 100
# Error types are the workers' class names; a longer one is cut, never reported whole.
MAX_LABEL = 100
# Statuses a run leaves: counted by the committer as runs end, never by scanning runs.
ACTIVE_STATUSES = (
    RunStatus.RUNNING,
    RunStatus.WAITING,
    RunStatus.NEEDS_ATTENTION,
    RunStatus.COMPENSATING,
)

Attributes = tuple[tuple[str, str], ...]


@dataclass
class Snapshot:
    """The figures of one look at the database, by metric name then label set."""

    values: dict[str, dict[Attributes, float]] = field(default_factory=lambda: defaultdict(dict))
    taken_at: float = 0.0


def _labels(**pairs: str) -> Attributes:
    return tuple((f"surefoot.{name}", value) for name, value in pairs.items())


def take_snapshot(connection: Connection, now: datetime) -> Snapshot:
    """Every gauge's figures, one grouped query per metric."""
    snap = Snapshot(taken_at=now.timestamp())
    values = snap.values
    _queues(connection, now, values)
    active = (
        select(runs.c.namespace, runs.c.status, func.count())
        .where(runs.c.status.in_([str(s) for s in ACTIVE_STATUSES]))
        .group_by(runs.c.namespace, runs.c.status)
    )
    for namespace, status, count in connection.execute(active):
        values["runs.active"][_labels(namespace=namespace, status=status)] = count
    _waits(connection, now, values)
    _dead_letters(connection, values)
    _workers(connection, now, values)
    progress = (
        select(operations.c.kind, operation_items.c.state, func.count())
        .select_from(
            operations.join(operation_items, operation_items.c.operation_id == operations.c.id)
        )
        .where(operations.c.state == "RUNNING")
        .group_by(operations.c.kind, operation_items.c.state)
    )
    for kind, state, count in connection.execute(progress):
        values["operation.items"][_labels(operation_kind=kind, item_state=state)] = count
    return snap


def _queues(
    connection: Connection, now: datetime, values: dict[str, dict[Attributes, float]]
) -> None:
    """Tasks due and not leased, by step type and version, with the live workers able to
    take them: `surefoot workers list`'s rule (store/worker_sessions.py), one namespace at
    a time."""
    due = (
        select(tasks.c.namespace)
        .where(text("tasks.status = 'ready'"), tasks.c.available_at <= now)
        .distinct()
    )
    for namespace in connection.scalars(due).all():
        for queue in queued_step_types(connection, namespace, now):
            labels = _labels(namespace=namespace, step_type=queue.name, step_version=queue.version)
            values["queue.depth"][labels] = queue.queued
            values["queue.age"][labels] = max(0.0, (now - queue.oldest).total_seconds())
            values["queue.capable_workers"][labels] = queue.capable_workers


def _waits(
    connection: Connection, now: datetime, values: dict[str, dict[Attributes, float]]
) -> None:
    """Nodes waiting, by what they wait for: an approval, a sleep, an event, a retry's
    backoff (a task not due yet). A run waiting on two branches counts twice."""
    waits = values["waits"]
    pending = (
        select(approvals.c.namespace, func.count())
        .where(approvals.c.status == "PENDING")
        .group_by(approvals.c.namespace)
    )
    for namespace, count in connection.execute(pending):
        waits[_labels(namespace=namespace, wait_kind="approval")] = count
    sleeping = (
        select(timers.c.namespace, func.count())
        .where(timers.c.kind == "sleep")
        .group_by(timers.c.namespace)
    )
    for namespace, count in connection.execute(sleeping):
        waits[_labels(namespace=namespace, wait_kind="sleep")] = count
    events = select(event_waits.c.namespace, func.count()).group_by(event_waits.c.namespace)
    for namespace, count in connection.execute(events):
        waits[_labels(namespace=namespace, wait_kind="event")] = count
    backoff = (
        select(tasks.c.namespace, func.count())
        .where(text("tasks.status = 'ready'"), tasks.c.available_at > now)
        .group_by(tasks.c.namespace)
    )
    for namespace, count in connection.execute(backoff):
        waits[_labels(namespace=namespace, wait_kind="retry")] = count


def _dead_letters(connection: Connection, values: dict[str, dict[Attributes, float]]) -> None:
    d = dead_letters.c
    query = (
        select(d.namespace, d.workflow_name, d.step_type, d.error_type, func.count().label("n"))
        .group_by(d.namespace, d.workflow_name, d.step_type, d.error_type)
        .order_by(text("n DESC"))
    )
    groups = values["dead_letters"]
    for index, (namespace, workflow, step_type, error_type, count) in enumerate(
        connection.execute(query)
    ):
        if index >= MAX_GROUPS:
            workflow, step_type, error_type = "other", "other", "other"
        # `error.type`: the semantic conventions' name, as on the attempts' spans.
        labels = (
            *_labels(namespace=namespace, workflow=workflow, step_type=step_type),
            ("error.type", error_type[:MAX_LABEL]),
        )
        groups[labels] = groups.get(labels, 0) + count


def _workers(
    connection: Connection, now: datetime, values: dict[str, dict[Attributes, float]]
) -> None:
    c = worker_sessions.c
    query = (
        select(c.namespace, func.count(), func.coalesce(func.sum(c.credit), 0))
        .where(c.expires_at >= now)
        .group_by(c.namespace)
    )
    for namespace, count, credit in connection.execute(query):
        labels = _labels(namespace=namespace)
        values["workers.connected"][labels] = count
        values["workers.credit"][labels] = int(credit)
    held = (
        select(tasks.c.namespace, func.count())
        .where(text("tasks.status = 'leased'"))
        .group_by(tasks.c.namespace)
    )
    for namespace, count in connection.execute(held):
        values["workers.in_flight"][_labels(namespace=namespace)] = count


# name -> (unit, description) of each gauge the snapshot feeds.
GAUGES: dict[str, tuple[str, str]] = {
    "queue.depth": ("{task}", "Tasks due and waiting for a worker, by step type and version"),
    "queue.age": ("s", "Age of the oldest task due and waiting for a worker"),
    "queue.capable_workers": (
        "{worker}",
        "Connected, not draining workers that can take the queue's tasks",
    ),
    "runs.active": ("{run}", "Runs not ended, by status"),
    "waits": ("{wait}", "Nodes waiting, by kind: approval, sleep, event, retry"),
    "dead_letters": ("{step}", "Dead-lettered steps awaiting an operator, by group"),
    "workers.connected": ("{worker}", "Worker streams confirmed by a control plane"),
    "workers.credit": ("{task}", "Credit the connected workers granted"),
    "workers.in_flight": ("{task}", "Tasks leased to workers now"),
    "operation.items": ("{item}", "Items of running redrives and run actions, by state"),
}


class DatabaseGauges:
    """The observable gauges, and the thread that refreshes what they report."""

    def __init__(self, engine: Engine, meter: Meter, interval: float) -> None:
        self._engine = engine
        self._interval = interval
        self._snapshot = Snapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="surefoot-metrics", daemon=True)
        for name, (unit, description) in GAUGES.items():
            meter.create_observable_gauge(
                f"surefoot.{name}", [self._observer(name)], unit=unit, description=description
            )

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            figures = self._snapshot.values.get(name, {})
            return [Observation(value, dict(labels)) for labels, value in figures.items()]

        return observe

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def refresh(self) -> None:
        """Read the figures now (the thread does it every `interval`)."""
        try:
            with self._engine.connect() as connection:
                snapshot = take_snapshot(connection, datetime.now(UTC))
        except Exception:
            # The database away: the gauges keep the last figures, the log says why.
            log.warning("metrics: reading the gauges' figures failed", exc_info=True)
            return
        self._snapshot = snapshot

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.refresh()
