"""The group committer: every state change of this process goes through one thread.

Operations queue up while a transaction runs, and the next transaction takes all of them, so
under load one commit checkpoints hundreds of step results (group commit), and the tasks those
results schedule are leased to connected workers in the same transaction (no extra claim round
trip). Idle, it wakes every `poll_interval` to hand out tasks whose retry timer came due and
tasks scheduled by other control planes, and every `reap_interval` to take back expired leases.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from surefoot.v1 import worker_service_pb2 as wpb

from controlplane import telemetry
from controlplane.dispatch import claims, waiting
from controlplane.dispatch import operations as ops
from controlplane.dispatch.sessions import SessionRegistry
from controlplane.dispatch.starts import BatchStarts
from controlplane.dispatch.tasks import task_message
from controlplane.dispatch.wakeups import notify_tasks_ready
from controlplane.engine import machine
from controlplane.engine.events import (
    AbandonRequested,
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    RunEvent,
)
from controlplane.engine.state import OPEN_STEP, parse_task_id
from controlplane.engine.triage import NotDeadLettered
from controlplane.store.codec import to_datetime, to_epoch
from controlplane.store.definitions import DefinitionCache
from controlplane.store.run_batch import LoadedRun, RunBatch, RunCache, traceparent_for
from controlplane.store.step_types import StepCatalogCache

log = logging.getLogger("surefoot.committer")

MAX_BATCH = 512
REAP_LIMIT = 500
# Events past their keeping time are deleted this often (seconds).
PURGE_INTERVAL = 300.0


@dataclass
class _Deliveries:
    """What to tell whom once the transaction has committed."""

    results: list[tuple[ops.Operation, Any]] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    acks: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    cancels: list[str] = field(default_factory=list)
    spans: list[telemetry.AttemptSpan] = field(default_factory=list)


class Committer:
    def __init__(
        self,
        engine: Engine,
        definitions: DefinitionCache,
        catalog: StepCatalogCache,
        *,
        lease_seconds: float,
        poll_interval: float = 0.2,
        reap_interval: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self._engine = engine
        self._definitions = definitions
        self._catalog = catalog
        self._lease = lease_seconds
        self._poll_interval = poll_interval
        self._reap_interval = reap_interval
        self._rng = rng or random.Random()
        self._lock_rows = engine.dialect.name == "postgresql"
        self._queue: queue.SimpleQueue[ops.Operation | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="surefoot-committer", daemon=True)
        self.sessions = SessionRegistry()
        self._runs = RunCache()
        self._maybe_ready = True
        self._next_poll = 0.0
        self._next_reap = 0.0
        # Earliest durable timer known (epoch seconds); refreshed from the database each reap.
        self._next_timer: float | None = None
        self._next_purge = 0.0
        self._rotation = 0
        # Names this process in NOTIFY payloads, so that it does not wake itself.
        self.origin = uuid.uuid4().hex
        self._starts: BatchStarts | None = None
        self._spans: list[telemetry.AttemptSpan] | None = None

    # -- the event loop side -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def submit(self, operation: ops.Operation) -> asyncio.Future[Any]:
        """Queue `operation`; the future resolves once its transaction has committed."""
        operation.future = asyncio.get_running_loop().create_future()
        self._queue.put(operation)
        return operation.future

    def wake(self) -> None:
        """Another process committed tasks: look for them now (any thread)."""
        self._queue.put(ops.LookForTasks())

    def post(self, operation: ops.Operation) -> None:
        """Queue `operation` without waiting for it."""
        self._queue.put(operation)

    # -- the committer thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            wake = min(self._next_poll, self._next_reap)
            if self._next_timer is not None:
                wake = min(wake, waiting.monotonic_deadline(self._next_timer))
            timeout = max(0.0, wake - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = _TICK
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            work = [op for op in batch if op is not _TICK]
            now = time.monotonic()
            if (
                not work
                and now < self._next_reap
                and not (now >= self._next_poll and self.sessions.with_credit())
                and not self._timers_due(time.time())
            ):
                # Nothing to hand out and nothing to reap: no transaction at all.
                self._next_poll = max(self._next_poll, now + self._poll_interval)
                continue
            began = time.perf_counter()
            self._process(work)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d in %.1f ms", len(work), (time.perf_counter() - began) * 1000)

    def _process(self, batch: list[ops.Operation]) -> None:
        try:
            deliveries = self._transaction(batch)
        except Exception as exc:
            if len(batch) > 1:
                # One bad operation (or a lost race with another control plane) must not
                # fail the others: retry each alone.
                log.info("batch of %d failed (%s); retrying one by one", len(batch), exc)
                for operation in batch:
                    self._process([operation])
                return
            if not _retriable(exc):
                self._fail(batch, exc)
                return
            log.warning("transaction failed, retrying once: %s", exc)
            try:
                deliveries = self._transaction(batch)
            except Exception as again:
                self._fail(batch, again)
                return
        self._deliver(deliveries)

    def _fail(self, batch: list[ops.Operation], exc: BaseException) -> None:
        if not isinstance(
            exc, (ops.NotFound, ops.Conflict, ops.PermissionDenied, ops.InvalidInput)
        ):
            log.error("operation failed: %s", exc, exc_info=exc)
        for operation in batch:
            _resolve(operation, exc=exc)

    def _transaction(self, batch: list[ops.Operation]) -> _Deliveries:
        now = time.time()
        deliveries = _Deliveries()
        # Spans of attempts this transaction records: emitted only once it has committed.
        self._spans = deliveries.spans if telemetry.enabled() else None
        for operation in batch:
            self._apply_session_change(operation, deliveries)
        closing = [
            op.session_id for op in batch if isinstance(op, ops.CloseSession) and op.release_leases
        ]
        reap = time.monotonic() >= self._next_reap
        with self._engine.begin() as connection:
            run_batch = RunBatch(connection, now, lock_rows=self._lock_rows, cache=self._runs)
            lost = claims.session_leases(connection, closing) if closing else []
            expired = (
                claims.expired_leases(connection, to_datetime(now), REAP_LIMIT)
                + claims.timed_out_leases(connection, to_datetime(now))
                if reap
                else []
            )
            results = [op for op in batch if isinstance(op, ops.RecordResult)]
            run_ids = {run_id for _, run_id in lost + expired}
            for op in results:
                parsed = parse_task_id(op.task_id)
                if parsed:
                    run_ids.add(parsed[0])
            run_ids.update(
                op.run_id for op in batch if isinstance(op, (ops.CancelRun, ops.TriageStep))
            )
            run_ids.update(
                waiting.approval_run(op.approval_id)
                for op in batch
                if isinstance(op, ops.DecideApproval)
            )
            found: dict[int, list[tuple[str, str]]] = {}
            for sent in batch:
                if isinstance(sent, ops.SendEvent):
                    found[id(sent)] = waiting.waiters(connection, sent)
                    run_ids.update(run_id for run_id, _ in found[id(sent)])
            due = waiting.due_timers(connection, now) if self._timers_due(now) else []
            run_ids.update(run_id for run_id, _, _ in due)
            run_batch.lock_runs(run_ids)
            rows = run_batch.task_rows([op.task_id for op in results if not self._knows_lease(op)])
            starts = [op for op in batch if isinstance(op, ops.StartRun)]
            self._starts = (
                BatchStarts(run_batch, starts, self._definitions, self._catalog) if starts else None
            )
            for operation in batch:
                if isinstance(operation, ops.SendEvent):
                    self._send(operation, run_batch, found[id(operation)], deliveries)
                else:
                    self._apply(operation, run_batch, rows, deliveries)
            waiting.fire_timers(run_batch, due, self._transition)
            waiting.match_kept_events(run_batch, self._transition)
            if lost:
                self._release(
                    run_batch,
                    [t for t, _ in lost],
                    "the worker's stream closed",
                    session_ids=closing,
                )
            if expired:
                self._release(run_batch, sorted({t for t, _ in expired}), "the lease expired")
            heartbeats = [
                t for op in batch if isinstance(op, ops.ExtendLeases) for t in op.task_ids
            ]
            if heartbeats:
                claims.extend_leases(connection, heartbeats, to_datetime(now + self._lease))
            self._assign(run_batch, now, deliveries)
            run_batch.flush()
            if reap:
                self._next_timer = waiting.earliest_timer(connection)
            if reap and now >= self._next_purge:
                waiting.purge_expired_events(connection, now)
                self._next_purge = now + PURGE_INTERVAL
            if self._lock_rows and any(
                t["status"] == "ready" for t in run_batch.new_tasks.values()
            ):
                notify_tasks_ready(connection, self.origin)
        self._runs.keep(run_batch.runs.values())
        written = run_batch.waits.earliest_timer
        if written is not None and (self._next_timer is None or written < self._next_timer):
            self._next_timer = written
        if due and len(due) == waiting.TIMER_LIMIT:
            self._next_timer = now  # more are due: look again at once
        if reap:
            self._next_reap = time.monotonic() + self._reap_interval
        deliveries.cancels.extend(run_batch.cancelled_tasks)
        return deliveries

    def _timers_due(self, now: float) -> bool:
        return self._next_timer is not None and self._next_timer <= now

    def _send(
        self,
        op: ops.SendEvent,
        batch: RunBatch,
        found: list[tuple[str, str]],
        out: _Deliveries,
    ) -> None:
        out.results.append((op, waiting.send_event(batch, op, found, self._transition)))

    # -- applying operations -------------------------------------------------------------

    def _apply_session_change(self, operation: ops.Operation, out: _Deliveries) -> None:
        if not isinstance(operation, _SESSION_CHANGES):
            return
        out.results.append((operation, None))
        if operation.applied:
            return
        operation.applied = True
        if isinstance(operation, ops.OpenSession):
            self.sessions.add(operation.session)
            self._maybe_ready = True
        elif isinstance(operation, ops.GrantCredit):
            session = self.sessions.by_id.get(operation.session_id)
            if session is not None:
                session.window += operation.n
                self._maybe_ready = True
        elif isinstance(operation, ops.StartDraining):
            session = self.sessions.by_id.get(operation.session_id)
            if session is not None:
                session.draining = True
        elif isinstance(operation, ops.CloseSession):
            session = self.sessions.remove(operation.session_id)
            if session is not None:
                session.closed = True
        elif isinstance(operation, ops.LookForTasks):
            self._maybe_ready = True

    def _apply(
        self,
        operation: ops.Operation,
        batch: RunBatch,
        rows: dict[str, Any],
        out: _Deliveries,
    ) -> None:
        try:
            if isinstance(operation, ops.StartRun):
                assert self._starts is not None
                out.results.append((operation, self._starts.start(operation)))
            elif isinstance(operation, ops.RecordResult):
                self._record_result(operation, batch, rows)
                out.acks[operation.session_id].append(operation.task_id)
            elif isinstance(operation, (ops.CancelRun, ops.TriageStep)):
                out.results.append((operation, self._operator_action(operation, batch)))
            elif isinstance(operation, ops.DecideApproval):
                out.results.append((operation, waiting.decide(batch, operation, self._transition)))
            elif isinstance(operation, ops.ExtendLeases):
                out.results.append((operation, None))
        except (ops.NotFound, ops.Conflict, ops.PermissionDenied, ops.InvalidInput) as exc:
            out.results.append((operation, exc))

    def _knows_lease(self, op: ops.RecordResult) -> bool:
        session = self.sessions.by_id.get(op.session_id)
        return session is not None and op.task_id in session.outstanding

    def _record_result(self, op: ops.RecordResult, batch: RunBatch, rows: dict[str, Any]) -> None:
        session = self.sessions.by_id.get(op.session_id)
        # The worker is done with it: its window slot is free whatever the outcome.
        leased_at = session.outstanding.pop(op.task_id, None) if session is not None else None
        parsed = parse_task_id(op.task_id)
        loaded = batch.runs.get(parsed[0]) if parsed else None
        if parsed is None or loaded is None:
            log.info("result for unknown task %s ignored", op.task_id)
            return
        _, node_id, attempt = parsed
        row = rows.get(op.task_id)
        worker_id = row.worker_id if row is not None and row.worker_id else op.worker_id
        started = to_epoch(row.leased_at) if row is not None and row.leased_at else leased_at
        event: AttemptCompleted | AttemptFailed | AttemptLost
        if op.kind == "complete":
            event = AttemptCompleted(node_id, attempt, op.output, batch.now, worker_id, started)
        elif op.kind == "fail":
            error = op.error or {"type": "Error", "message": "", "retryable": True}
            event = AttemptFailed(node_id, attempt, error, batch.now, worker_id, started)
        else:
            reason = f"handed back: {op.reason}" if op.reason else "handed back by the worker"
            event = AttemptLost(node_id, attempt, reason, batch.now, worker_id, started)
        if self._spans is not None:
            self._attempt_span(loaded, event, started)
        self._transition(batch, loaded.state.id, event)

    def _operator_action(self, op: ops.CancelRun | ops.TriageStep, batch: RunBatch) -> Any:
        loaded = batch.runs.get(op.run_id)
        if loaded is None or loaded.state.namespace != op.namespace:
            raise ops.NotFound(f"run {op.run_id} not found in namespace {op.namespace!r}")
        event: RunEvent
        if isinstance(op, ops.TriageStep):
            # The operator's clock is the commit's, like every other event of the batch.
            event = replace(op.event, time=batch.now)
        elif op.compensate:
            event = AbandonRequested(op.reason, op.principal, batch.now)
        else:
            event = CancelRequested(op.reason, op.principal, batch.now)
        try:
            self._transition(batch, op.run_id, event)
        except (machine.RunClosed, NotDeadLettered) as exc:
            raise ops.Conflict(str(exc)) from exc
        return batch.runs[op.run_id].state

    def _release(
        self,
        batch: RunBatch,
        task_ids: list[str],
        reason: str,
        session_ids: list[str] | None = None,
    ) -> None:
        """Take back leases whose worker is gone; the engine schedules the next attempt."""
        rows = batch.task_rows(task_ids, status="leased")
        now = to_datetime(batch.now)
        for task_id, row in rows.items():
            if session_ids is not None and row.session_id not in session_ids:
                continue
            why = reason
            if session_ids is None and claims.timed_out(row.leased_at, row.timeout_seconds, now):
                why = f"timed out: no result within {row.timeout_seconds} s"
            elif session_ids is None and row.lease_expires_at >= now:
                continue  # a heartbeat got there first
            if row.session_id in self.sessions.by_id:
                # A live worker whose lease ran out is told to stop. Its window slot stays
                # taken until it reports the attempt, so `_deliver` finds it as the holder.
                batch.cancelled_tasks.append(task_id)
            started = to_epoch(row.leased_at) if row.leased_at else None
            event = AttemptLost(
                row.node_id, row.attempt, why, batch.now, row.worker_id or "", started
            )
            if row.run_id in batch.runs:
                if self._spans is not None:
                    self._attempt_span(batch.runs[row.run_id], event, started)
                self._transition(batch, row.run_id, event)

    def _attempt_span(
        self,
        loaded: LoadedRun,
        event: AttemptCompleted | AttemptFailed | AttemptLost,
        started: float | None,
    ) -> None:
        """Keep the span of an attempt whose outcome this transaction records."""
        assert self._spans is not None
        state = loaded.state
        step = state.steps.get(event.node_id)
        if step is None or step.attempt != event.attempt or step.status not in OPEN_STEP:
            return  # a late result for an attempt already recorded: its span exists
        error_type = error_message = ""
        if isinstance(event, AttemptFailed):
            error_type = str(event.error.get("type", "Error"))
            error_message = str(event.error.get("message", ""))
        elif isinstance(event, AttemptLost):
            error_type, error_message = "AttemptLost", event.reason
        self._spans.append(
            telemetry.AttemptSpan(
                traceparent=traceparent_for(loaded.trace_id, step.task_id),
                run_id=state.id,
                workflow=f"{state.workflow_name}@{state.workflow_version}",
                node_id=event.node_id,
                step_type=step.step_type,
                attempt=event.attempt,
                idempotency_key=step.idempotency_key,
                outcome=_OUTCOMES[type(event)],
                started=started,
                ended=event.time,
                worker_id=event.worker_id,
                error_type=error_type,
                error_message=error_message,
            )
        )

    def _transition(self, batch: RunBatch, run_id: str, event: Any) -> None:
        loaded = batch.runs[run_id]
        definition = self._definitions.get(loaded.definition_id, batch.connection)
        catalog = self._catalog.catalog_for(loaded.state.namespace, batch.connection)
        state, transition = machine.apply(
            loaded.state, event, definition, catalog, self._rng.random
        )
        batch.record(state, transition)

    # -- handing out tasks ---------------------------------------------------------------

    def _assign(self, batch: RunBatch, now: float, out: _Deliveries) -> None:
        sessions = self.sessions.with_credit()
        if not sessions:
            self._next_poll = time.monotonic() + self._poll_interval
            return
        self._rotation = (self._rotation + 1) % len(sessions)
        sessions = sessions[self._rotation :] + sessions[: self._rotation]
        free = {s.id: s.free for s in sessions}
        lease_until = to_datetime(now + self._lease)
        leased_at = to_datetime(now)
        unassigned = False
        for task in batch.new_tasks.values():
            if to_epoch(task["available_at"]) > now:
                continue
            session = next(
                (
                    s
                    for s in sessions
                    if free[s.id] > 0
                    and s.can_run(task["namespace"], task["step_type"], task["step_version"])
                ),
                None,
            )
            if session is None:
                unassigned = True
                continue
            free[session.id] -= 1
            task.update(
                status="leased",
                session_id=session.id,
                worker_id=session.worker_id,
                leased_at=leased_at,
                lease_expires_at=lease_until,
            )
            out.tasks[session.id].append(task)
        poll_due = time.monotonic() >= self._next_poll
        if not (self._maybe_ready or unassigned or poll_due):
            return
        exhausted = True
        for session in sessions:
            if free[session.id] <= 0:
                continue
            claimed = claims.claim_ready_tasks(
                batch.connection, session, free[session.id], leased_at, lease_until
            )
            out.tasks[session.id].extend(claimed)
            if len(claimed) == free[session.id]:
                exhausted = False
        self._maybe_ready = not exhausted
        self._next_poll = time.monotonic() + self._poll_interval

    def _deliver(self, out: _Deliveries) -> None:
        for operation, result in out.results:
            if isinstance(result, Exception):
                _resolve(operation, exc=result)
            else:
                _resolve(operation, result=result)
        for session_id, rows in out.tasks.items():
            session = self.sessions.by_id.get(session_id)
            if session is None or not rows:
                continue  # closed meanwhile: its leases are released by CloseSession
            session.outstanding.update((row["id"], to_epoch(row["leased_at"])) for row in rows)
            batch = wpb.TaskBatch(tasks=[task_message(row) for row in rows])
            session.send(wpb.ServerMessage(tasks=batch))
        for session_id, task_ids in out.acks.items():
            session = self.sessions.by_id.get(session_id)
            if session is not None:
                session.send(wpb.ServerMessage(ack=wpb.Ack(task_ids=task_ids)))
        for task_id in out.cancels:
            holder = self.sessions.holder_of(task_id)
            if holder is not None:
                holder.send(wpb.ServerMessage(cancel=wpb.Cancel(task_id=task_id)))
        if out.spans:
            telemetry.emit_attempts(out.spans)


_OUTCOMES = {AttemptCompleted: "completed", AttemptFailed: "failed", AttemptLost: "lost"}

_SESSION_CHANGES = (
    ops.OpenSession,
    ops.GrantCredit,
    ops.StartDraining,
    ops.CloseSession,
    ops.LookForTasks,
)


class _Tick(ops.Operation):
    """Wakes the committer for timers and reaping."""


_TICK = _Tick()


def _resolve(
    operation: ops.Operation, *, result: Any = None, exc: BaseException | None = None
) -> None:
    future = operation.future
    if future is None:
        return

    def settle() -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    future.get_loop().call_soon_threadsafe(settle)


def _retriable(exc: BaseException) -> bool:
    """Deadlocks, serialization failures and lost insert races between control planes are
    worth one more try: the second attempt sees what the other one committed."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and code in {"40001", "40P01"}
