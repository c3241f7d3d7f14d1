"""Changes to many runs gathered into one transaction (group commit).

Every run touched is locked first (`FOR UPDATE` on PostgreSQL; SQLite's single writer lock
does the same), its history is appended with consecutive sequence numbers, and its projection
and tasks are written with one statement per table: law 1 at the cost of a few statements per
batch instead of per step.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Row, select

from controlplane.audit.chain import GENESIS, event_hash
from controlplane.engine.events import Transition
from controlplane.engine.state import COMPENSATING, NEEDS_ATTENTION, RUNNING, RunState
from controlplane.store.bulk import among, delete_rows, insert_rows, update_rows
from controlplane.store.codec import dump_json, load_json, optional_datetime, to_datetime, to_epoch
from controlplane.store.error_signatures import error_signature
from controlplane.store.schema import (
    connector_outcomes,
    dead_letters,
    history,
    runs,
    tasks,
)
from controlplane.store.wait_writes import WaitWrites

CHUNK = 500
# Enough to recognise an error; the whole message stays in the run's history.
MAX_ERROR_MESSAGE = 1000


@dataclass
class LoadedRun:
    state: RunState
    definition_id: int
    last_seq: int
    trace_id: str
    request_id: str | None = None
    # The hash of the run's last history event: the next one chains from it (audit/chain.py).
    last_hash: str = GENESIS
    new: bool = False
    dirty: bool = False


def traceparent_for(trace_id: str, task_id: str) -> str:
    """W3C trace context for an attempt's span: the run's trace, a span id from the task."""
    span_id = hashlib.sha256(task_id.encode()).hexdigest()[:16]
    return f"00-{trace_id}-{span_id}-01"


class RunCache:
    """Runs as the last committed transaction of this process left them, by id.

    Loading a run then only needs its `last_seq` (read under the row lock): when it matches,
    nobody else changed the run and its JSON state need not be read and decoded again. A
    bounded LRU: a miss costs one read, never correctness.
    """

    def __init__(self, capacity: int = 5000) -> None:
        self._capacity = capacity
        self._runs: OrderedDict[str, LoadedRun] = OrderedDict()

    def get(self, run_id: str, last_seq: int) -> LoadedRun | None:
        found = self._runs.get(run_id)
        if found is None or found.last_seq != last_seq:
            return None
        self._runs.move_to_end(run_id)
        return replace(found, new=False, dirty=False)

    def keep(self, loaded: Iterable[LoadedRun]) -> None:
        """Remember runs after their transaction committed. Only runs with work in flight are
        kept: a run that waits (or has ended) costs no memory (law 5)."""
        for run in loaded:
            if run.state.status not in (RUNNING, COMPENSATING):
                self._runs.pop(run.state.id, None)
            else:
                self._runs[run.state.id] = replace(run, new=False, dirty=False)
                self._runs.move_to_end(run.state.id)
        while len(self._runs) > self._capacity:
            self._runs.popitem(last=False)


class RunBatch:
    def __init__(
        self,
        connection: Connection,
        now: float,
        *,
        lock_rows: bool,
        cache: RunCache | None = None,
    ) -> None:
        self.connection = connection
        self.now = now
        self._lock_rows = lock_rows
        self._cache = cache
        self.runs: dict[str, LoadedRun] = {}
        self.new_tasks: dict[str, dict[str, Any]] = {}
        self.cancelled_tasks: list[str] = []
        self._history_rows: list[dict[str, Any]] = []
        self._removed: set[str] = set()
        # Whether each run changed in this batch had a dead_letters row when it was loaded.
        self._dead_before: dict[str, bool] = {}
        # Each changed run's status when loaded (None: new in this batch): live runs tables
        # tell from it which runs entered or left their filter.
        self.status_before: dict[str, str | None] = {}
        self._forget_outcomes: list[str] = []
        self.waits = WaitWrites()

    # -- reading -------------------------------------------------------------------------

    def lock_runs(self, run_ids: Iterable[str]) -> None:
        """Lock and load runs not loaded yet, in id order so that batches never deadlock."""
        missing = sorted(set(run_ids) - self.runs.keys())
        for start in range(0, len(missing), CHUNK):
            chunk = missing[start : start + CHUNK]
            if self._cache is not None:
                chunk = self._lock_cached(chunk)
            if not chunk:
                continue
            query = select(runs).where(among(self.connection, runs.c.id, chunk)).order_by(runs.c.id)
            if self._lock_rows:
                query = query.with_for_update()
            for row in self.connection.execute(query):
                self.runs[row.id] = _loaded(row)

    def _lock_cached(self, run_ids: list[str]) -> list[str]:
        """Lock `run_ids`, take the unchanged ones from the cache; the others to load."""
        assert self._cache is not None
        query = select(runs.c.id, runs.c.last_seq).where(among(self.connection, runs.c.id, run_ids))
        query = query.order_by(runs.c.id)
        if self._lock_rows:
            query = query.with_for_update()
        misses = []
        for row in self.connection.execute(query):
            cached = self._cache.get(row.id, row.last_seq)
            if cached is None:
                misses.append(row.id)
            else:
                self.runs[row.id] = cached
        return misses

    def task_rows(self, task_ids: Iterable[str], **conditions: Any) -> dict[str, Row[Any]]:
        ids = sorted(set(task_ids))
        found: dict[str, Row[Any]] = {}
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            query = select(tasks).where(among(self.connection, tasks.c.id, chunk))
            for name, value in conditions.items():
                query = query.where(tasks.c[name] == value)
            for row in self.connection.execute(query):
                found[row.id] = row
        return found

    def history_rows(self, run_ids: set[str]) -> dict[str, list[dict[str, Any]]]:
        """The history rows this batch writes for each of `run_ids`, in seq order."""
        found: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
        for row in self._history_rows:
            if row["run_id"] in found:
                found[row["run_id"]].append(row)
        return found

    def queued_history(self, run_id: str) -> list[dict[str, Any]]:
        """History rows of `run_id` this batch will write (not readable from the table yet)."""
        return [row for row in self._history_rows if row["run_id"] == run_id]

    # -- recording -----------------------------------------------------------------------

    def add_run(
        self,
        state: RunState,
        definition_id: int,
        trace_id: str,
        request_id: str | None,
        transition: Transition,
    ) -> None:
        self.runs[state.id] = LoadedRun(
            state, definition_id, 0, trace_id, request_id=request_id, new=True
        )
        self.record(state, transition)

    def record(self, state: RunState, transition: Transition) -> None:
        """Queue the writes of one state change of a run loaded in this batch."""
        loaded = self.runs[state.id]
        if state.id not in self.status_before:
            self.status_before[state.id] = None if loaded.new else loaded.state.status
        if state.id not in self._dead_before:
            self._dead_before[state.id] = (
                not loaded.new
                and loaded.state.status == NEEDS_ATTENTION
                and loaded.state.attention is not None
            )
        loaded.state = state
        loaded.dirty = True
        for event in transition.events:
            loaded.last_seq += 1
            time = to_datetime(event.time)
            data = dump_json(event.data)
            # Chained here, from the hash the run's row carried: no read of history.
            loaded.last_hash = event_hash(
                loaded.last_hash,
                state.id,
                loaded.last_seq,
                event.type,
                time,
                event.node_id,
                event.attempt,
                event.principal,
                data,
            )
            self._history_rows.append(
                {
                    "run_id": state.id,
                    "seq": loaded.last_seq,
                    "type": event.type,
                    "time": time,
                    "node_id": event.node_id,
                    "attempt": event.attempt,
                    "principal": event.principal,
                    "data": data,
                    "hash": loaded.last_hash,
                }
            )
        for task_id in transition.remove:
            if self.new_tasks.pop(task_id, None) is None:
                self._removed.add(task_id)
        for spec in transition.schedule:
            self.new_tasks[spec.task_id] = {
                "id": spec.task_id,
                "namespace": state.namespace,
                "run_id": state.id,
                "node_id": spec.node_id,
                "attempt": spec.attempt,
                "workflow_name": state.workflow_name,
                "step_type": spec.step_type,
                "step_version": spec.step_version,
                "idempotency_key": spec.idempotency_key,
                "input": dump_json(spec.input),
                "status": "ready",
                "available_at": to_datetime(spec.available_at),
                # Whole seconds, rounded up: a 0.5 s timeout must not become "none".
                "timeout_seconds": math.ceil(spec.timeout_seconds),
                "session_id": None,
                "worker_id": None,
                "leased_at": None,
                "lease_expires_at": None,
                "traceparent": traceparent_for(loaded.trace_id, spec.task_id),
            }
        self.cancelled_tasks.extend(transition.cancel)
        self._forget_outcomes.extend(transition.forget_outcomes)
        self.waits.record(state, transition, self.now)

    # -- writing -------------------------------------------------------------------------

    def flush(self) -> None:
        c = self.connection
        delete_rows(c, tasks, "id", sorted(self._removed))
        insert_rows(
            c, runs, [_run_values(r) | _run_identity(r) for r in self.runs.values() if r.new]
        )
        update_rows(
            c,
            runs,
            "id",
            [
                _run_values(r) | {"id": r.state.id}
                for r in self.runs.values()
                if r.dirty and not r.new
            ],
        )
        insert_rows(c, history, self._history_rows)
        insert_rows(c, tasks, list(self.new_tasks.values()))
        self.waits.flush(c)
        delete_rows(c, connector_outcomes, "idempotency_key", self._forget_outcomes)
        # Rewritten whole when a run was and still is waiting on an operator: its dead letter
        # may be another step now (a retried step that gave up again, a compensation).
        delete_rows(
            c, dead_letters, "run_id", sorted(r for r, was in self._dead_before.items() if was)
        )
        insert_rows(
            c,
            dead_letters,
            [
                row
                for run_id in sorted(self._dead_before)
                if (row := _dead_letter_row(self.runs[run_id].state)) is not None
            ],
        )


def _loaded(row: Row[Any]) -> LoadedRun:
    saved = load_json(row.state)
    completions, steps = RunState.steps_from_json(saved)
    waiting_since = row.waiting_since
    state = RunState(
        id=row.id,
        namespace=row.namespace,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        status=row.status,
        input=load_json(row.input),
        created_at=to_epoch(row.created_at),
        updated_at=to_epoch(row.updated_at),
        output=load_json(row.output),
        current_node=row.current_node,
        last_error=load_json(row.last_error),
        waiting_for=row.waiting_for,
        waiting_since=to_epoch(waiting_since) if waiting_since else None,
        closed_at=to_epoch(row.closed_at) if row.closed_at else None,
        steps=steps,
        completions=completions,
        compensation=RunState.compensation_from_json(saved),
        attention=RunState.attention_from_json(saved),
        paused=RunState.paused_from_json(saved),
    )
    return LoadedRun(
        state, row.definition_id, row.last_seq, row.trace_id, row.request_id, row.last_hash
    )


def _dead_letter_row(state: RunState) -> dict[str, Any] | None:
    if state.status != NEEDS_ATTENTION or state.attention not in state.steps:
        return None
    step = state.steps[state.attention]
    error = step.last_error or {}
    message = str(error.get("message", ""))[:MAX_ERROR_MESSAGE]
    return {
        "run_id": state.id,
        "namespace": state.namespace,
        "node_id": step.node_id,
        "workflow_name": state.workflow_name,
        "workflow_version": state.workflow_version,
        "step_type": step.step_type,
        "error_type": str(error.get("type", "") or "Error")[:200],
        "error_message": message,
        "attempts": step.attempt,
        "compensation": step.kind == "compensation",
        # The moment the run began waiting on an operator, so a rewrite keeps it.
        "dead_lettered_at": to_datetime(state.waiting_since or state.updated_at),
        "step_version": step.step_version,
        "idempotency": step.idempotency,
        # Computed here, once per dead letter: grouping an incident reads an index.
        "error_signature": error_signature(message),
    }


def _run_values(loaded: LoadedRun) -> dict[str, Any]:
    state = loaded.state
    return {
        "status": state.status,
        "output": None if state.output is None else dump_json(state.output),
        "state": dump_json(state.steps_json()),
        "current_node": state.current_node,
        "last_error": None if state.last_error is None else dump_json(state.last_error),
        "waiting_for": state.waiting_for,
        "waiting_since": optional_datetime(state.waiting_since),
        "last_seq": loaded.last_seq,
        "last_hash": loaded.last_hash,
        "updated_at": to_datetime(state.updated_at),
        "closed_at": optional_datetime(state.closed_at),
    }


def _run_identity(loaded: LoadedRun) -> dict[str, Any]:
    state = loaded.state
    return {
        "id": state.id,
        "namespace": state.namespace,
        "definition_id": loaded.definition_id,
        "workflow_name": state.workflow_name,
        "workflow_version": state.workflow_version,
        "request_id": loaded.request_id,
        "input": dump_json(state.input),
        "trace_id": loaded.trace_id,
        "created_at": to_datetime(state.created_at),
    }
