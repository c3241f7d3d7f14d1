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

from controlplane import telemetry
from controlplane.audit.chain import GENESIS, event_hash
from controlplane.engine.events import Transition
from controlplane.engine.replay import CANCELLED_MID_WAY
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
from controlplane.tracing import sampling
from controlplane.tracing.transitions import spans_ended

CHUNK = 500
# Extra keys of a task row claimed on PostgreSQL (`dispatch.claims`): its run's last_seq
# once the claim took the sequence numbers of the attempts it started, and the run's hash
# before them.
RUN_LAST_SEQ = "run_last_seq"
RUN_LAST_HASH = "run_last_hash"
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
    # The time of the run's latest event written by this process, if later than the state's
    # `updated_at`: no event is written with an earlier one (seq order is time order).
    last_time: float = 0.0


def traceparent_for(trace_id: str, task_id: str) -> str:
    """W3C trace context for an attempt's span: the run's trace, a span id from the task."""
    span_id = hashlib.sha256(task_id.encode()).hexdigest()[:16]
    return f"00-{trace_id}-{span_id}-{sampling.flags(trace_id)}"


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

    def advance(self, run_id: str, before: int, last_seq: int, last_hash: str) -> None:
        """A run not loaded got events that change nothing of its state (ATTEMPT_STARTED):
        its cached copy, if it was current before them (at `before`), stays usable. Called
        in the transaction: if it rolls back, the copy no longer matches and is read again."""
        found = self._runs.get(run_id)
        if found is not None and found.last_seq == before:
            found.last_seq = last_seq
            found.last_hash = last_hash

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
        # Why each of them was cancelled, as the worker is told (Cancel.reason).
        self.cancel_reasons: dict[str, str] = {}
        self._history_rows: list[dict[str, Any]] = []
        # (id, last_hash) of runs not loaded whose history this batch appends to (attempts
        # started on tasks claimed from the table): the claim already moved their last_seq.
        self._chained: dict[str, str] = {}
        self._last_seqs: dict[str, int] = {}
        self._seqs_before: dict[str, int] = {}
        self._removed: set[str] = set()
        # Whether each run changed in this batch had a dead_letters row when it was loaded.
        self._dead_before: dict[str, bool] = {}
        # Each changed run's status when loaded (None: new in this batch): live runs tables
        # tell from it which runs entered or left their filter.
        self.status_before: dict[str, str | None] = {}
        self._forget_outcomes: list[str] = []
        self.waits = WaitWrites()
        # The run and wait spans the recorded changes end, when tracing is on (emitted after
        # the commit, with the attempts' spans: Handout.assign hands them to the deliveries).
        self.trace_spans: list[telemetry.TraceSpan] | None = [] if telemetry.enabled() else None

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
        if self.trace_spans is not None:
            before = None if loaded.state is state else loaded.state
            self.trace_spans.extend(spans_ended(loaded.trace_id, before, state, self.now))
        loaded.state = state
        loaded.dirty = True
        for event in transition.events:
            self._append_event(
                loaded,
                event.type,
                event.time,
                event.node_id,
                event.attempt,
                event.principal,
                event.data,
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
        if transition.cancel:
            why = cancel_reason(state, transition)
            self.cancel_reasons.update(dict.fromkeys(transition.cancel, why))
        if transition.cancel:
            self._attempts_cancelled(state, transition.cancel)
        self._forget_outcomes.extend(transition.forget_outcomes)
        self.waits.record(state, transition, self.now)

    def _attempts_cancelled(self, state: RunState, task_ids: list[str]) -> None:
        """Attempts running when their run stopped them stay in `Step.attempts` as CANCELLED
        (their ATTEMPT_STARTED is in history). Only a stopped run reads its task rows here:
        the engine cannot know which of its tasks a worker had leased."""
        for row in self.task_rows(task_ids, status="leased").values():
            step = state.steps.get(row.node_id)
            if step is None or step.attempt != row.attempt:
                continue
            if any(a["number"] == row.attempt for a in step.finished_attempts):
                continue
            # A copy: the step may be shared with the state this transition started from.
            step = replace(step)
            started = to_epoch(row.leased_at) if row.leased_at else None
            error = {"type": "Cancelled", "message": CANCELLED_MID_WAY}
            step.finish_attempt("CANCELLED", self.now, row.worker_id or "", started, error)
            state.steps[row.node_id] = step

    def _append_event(
        self,
        loaded: LoadedRun,
        type: str,
        moment: float,
        node_id: str,
        attempt: int,
        principal: str,
        data: dict[str, Any],
    ) -> None:
        """Queue one history event of a loaded run, numbered and chained after its last."""
        loaded.last_seq += 1
        # Never before the run's previous event: seq order stays time order even when an
        # event's moment was read before another's was written.
        loaded.last_time = max(moment, loaded.last_time)
        self._history_rows.append(
            self._history_row(
                loaded.state.id,
                loaded.last_seq,
                loaded.last_hash,
                type,
                loaded.last_time,
                node_id,
                attempt,
                principal,
                data,
            )
        )
        loaded.last_hash = self._history_rows[-1]["hash"]

    @staticmethod
    def _history_row(
        run_id: str,
        seq: int,
        previous_hash: str,
        type: str,
        moment: float,
        node_id: str,
        attempt: int,
        principal: str,
        data: dict[str, Any],
    ) -> dict[str, Any]:
        time = to_datetime(moment)
        text = dump_json(data)
        # Chained here, from the hash the run's row carried: no read of history.
        chained = event_hash(
            previous_hash, run_id, seq, type, time, node_id, attempt, principal, text
        )
        return {
            "run_id": run_id,
            "seq": seq,
            "type": type,
            "time": time,
            "node_id": node_id,
            "attempt": attempt,
            "principal": principal,
            "data": text,
            "hash": chained,
        }

    def attempts_started(self, leased: Iterable[dict[str, Any]]) -> None:
        """ATTEMPT_STARTED for each task leased in this transaction, when it is leased (not
        when its result comes): a running attempt, and one cancelled mid-way, is in history.

        A run loaded in this batch numbers them after its other events; the others were
        numbered by the claim itself (`claims.RUN_LAST_SEQ`, on PostgreSQL) or are read here
        (SQLite, whose single writer holds the database).
        """
        by_run: dict[str, list[dict[str, Any]]] = {}
        for row in leased:
            by_run.setdefault(row["run_id"], []).append(row)
        unnumbered = sorted(
            r for r, rows in by_run.items() if r not in self.runs and RUN_LAST_SEQ not in rows[0]
        )
        read = self._run_ends(unnumbered)
        for run_id, rows in by_run.items():
            rows.sort(key=lambda row: row["id"])
            loaded = self.runs.get(run_id)
            if loaded is not None:
                loaded.dirty = True
                for row in rows:
                    self._append_event(loaded, *_started(row))
                continue
            if RUN_LAST_SEQ in rows[0] and rows[0][RUN_LAST_SEQ] is not None:
                last_seq = rows[0][RUN_LAST_SEQ] - len(rows)
                last_hash = rows[0][RUN_LAST_HASH]
            elif run_id in read:
                last_seq, last_hash = read[run_id]
            else:
                continue  # the run is gone (its tasks with it)
            for row in rows:
                last_seq += 1
                kind, moment, node_id, attempt, principal, data = _started(row)
                self._history_rows.append(
                    self._history_row(
                        run_id,
                        last_seq,
                        last_hash,
                        kind,
                        moment,
                        node_id,
                        attempt,
                        principal,
                        data,
                    )
                )
                last_hash = self._history_rows[-1]["hash"]
            self._chained[run_id] = last_hash
            self._last_seqs[run_id] = last_seq
            self._seqs_before[run_id] = last_seq - len(rows)
        for rows in by_run.values():
            for row in rows:
                row.pop(RUN_LAST_SEQ, None)
                row.pop(RUN_LAST_HASH, None)

    @property
    def appended_runs(self) -> set[str]:
        """Runs not loaded whose history this batch appended to (attempts started)."""
        return set(self._chained)

    def _run_ends(self, run_ids: list[str]) -> dict[str, tuple[int, str]]:
        if not run_ids:
            return {}
        query = select(runs.c.id, runs.c.last_seq, runs.c.last_hash).where(
            among(self.connection, runs.c.id, run_ids)
        )
        return {row.id: (row.last_seq, row.last_hash) for row in self.connection.execute(query)}

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
        # Runs not loaded that this batch appended ATTEMPT_STARTED to: their hash (on
        # PostgreSQL the claim set last_seq already; written again, it is the same).
        update_rows(
            c,
            runs,
            "id",
            [
                {"id": run_id, "last_seq": self._last_seqs[run_id], "last_hash": chained}
                for run_id, chained in sorted(self._chained.items())
            ],
        )
        if self._cache is not None:
            for run_id, chained in self._chained.items():
                self._cache.advance(
                    run_id, self._seqs_before[run_id], self._last_seqs[run_id], chained
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
        state,
        row.definition_id,
        row.last_seq,
        row.trace_id,
        row.request_id,
        row.last_hash,
        last_time=state.updated_at,
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


def _started(row: dict[str, Any]) -> tuple[str, float, str, int, str, dict[str, Any]]:
    """ATTEMPT_STARTED of a leased task row: (type, time, node, attempt, principal, data)."""
    worker_id = row["worker_id"] or ""
    return (
        "ATTEMPT_STARTED",
        to_epoch(row["leased_at"]),
        row["node_id"],
        row["attempt"],
        worker_id or "system",
        {"worker_id": worker_id, "task_id": row["id"]},
    )


def cancel_reason(state: RunState, transition: Transition) -> str:
    """Why the engine stopped a run's attempts, as their worker is told."""
    for event in transition.events:
        if event.type == "RUN_CANCELLED":
            reason = event.data.get("reason") or ""
            return f"run cancelled: {reason}" if reason else "run cancelled"
    return f"the step is no longer needed (the run is {str(state.status).lower()})"
