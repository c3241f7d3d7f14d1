"""The group committer: every state change of this process goes through one thread.

Operations queue up while a transaction runs, and the next transaction takes all of them, so
under load one commit checkpoints hundreds of step results (group commit), and the tasks those
results schedule are leased to connected workers in the same transaction (no extra claim round
trip). Idle, it wakes every `poll_interval` to hand out tasks whose retry timer came due and
tasks scheduled by other control planes, and every `reap_interval` to take back expired leases.

When the database cannot be reached, the loop waits it out instead of spinning: it tries
again after a capped, jittered backoff (at most about a second apart), answers the callers
waiting on a transaction UNAVAILABLE at once (they retry with the same request id), and keeps
what workers sent (results, heartbeats, session changes) for the first transaction after the
database is back, so that no result a worker reported during the outage is lost.

This module holds the loop and what outlives a batch; `transaction` holds one batch's
transaction, `operations` what each request does, `reaping` and `delivery` the leases taken
back and handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from controlplane import errors
from controlplane.dispatch import operations as ops
from controlplane.dispatch import waiting
from controlplane.dispatch.delivery import Deliveries, Handout, deliver, resolve
from controlplane.dispatch.held_connection import HeldConnection
from controlplane.dispatch.loop_calls import LoopCalls
from controlplane.dispatch.reaping import Reaper
from controlplane.dispatch.run_notices import notices_of, notify_runs_changed
from controlplane.dispatch.run_watches import RunNews, RunWatches
from controlplane.dispatch.sessions import SessionRegistry
from controlplane.dispatch.starts import StartedRun
from controlplane.dispatch.transaction import Resources, Transaction
from controlplane.dispatch.wakeups import notify_cancels, notify_tasks_ready
from controlplane.store.definitions import DefinitionCache
from controlplane.store.reachability import DATABASE, Backoff, is_unreachable
from controlplane.store.run_batch import RunCache
from controlplane.store.step_types import StepCatalogCache

if TYPE_CHECKING:
    from controlplane.metrics import CommitInstruments

log = logging.getLogger("surefoot.committer")

MAX_BATCH = 512
# What workers sent while the database was away is kept for when it is back, up to this
# many operations; past it the oldest go (a result not kept is reported again by its worker
# on its next stream, or its lease runs out and the attempt is run again).
MAX_HELD = 100_000


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
        self._db = HeldConnection(engine)
        self._lock_rows = engine.dialect.name == "postgresql"
        self._queue: queue.SimpleQueue[ops.Operation | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="surefoot-committer", daemon=True)
        self.sessions = SessionRegistry()
        # How long a lease lasts from its grant or last heartbeat: GetRun tells a late
        # heartbeat from the lease's expiry with it.
        self.lease_seconds = lease_seconds
        # Names this process in NOTIFY payloads, so that it does not wake itself.
        self.origin = uuid.uuid4().hex
        # The WatchRun and WatchRuns streams of this process, told after each commit that
        # changed runs (and of other control planes' commits by their NOTIFY).
        self.watches = RunWatches(engine, self.origin)
        self._resources = Resources(
            definitions=definitions,
            catalog=catalog,
            sessions=self.sessions,
            uniform=(rng or random.Random()).random,
            lease_seconds=lease_seconds,
            lock_rows=self._lock_rows,
            runs=RunCache(),
        )
        self._handout = Handout(self.sessions, poll_interval, lease_seconds)
        self._reaper = Reaper(reap_interval)
        self._timers = waiting.TimerWatch()
        # While the database is unreachable: when to try again (time.monotonic()), and the
        # operations kept for that try.
        self._backoff = Backoff(uniform=(rng or random.Random()).random)
        self._retry_at: float | None = None
        self._held: list[ops.Operation] = []
        # Metrics of each batch and transaction, when the control plane exports any.
        self.instruments: CommitInstruments | None = None

    # -- the event loop side -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
        self.watches.close()

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
            wake = min(self._handout.next_look(), self._reaper.next_reap)
            if self._timers.next is not None:
                wake = min(wake, waiting.monotonic_deadline(self._timers.next))
            if self._retry_at is not None:
                # The database is away: nothing is worth a try before the backoff says so.
                wake = self._retry_at
            timeout = max(0.0, wake - time.monotonic())
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = _TICK
            if first is None:
                self._db.release()
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
            if self._retry_at is not None:
                self._held.extend(work)
                if now >= self._retry_at:
                    self._try_again()
                continue
            if (
                not work
                and not self._reaper.due()
                and not self._handout.poll_due(now)
                and not self._timers.due(time.time())
            ):
                # Nothing to hand out and nothing to reap: no transaction at all.
                self._handout.idle(now)
                continue
            began = time.perf_counter()
            self._process(work)
            if self.instruments is not None:
                self.instruments.batch_done(len(work), time.perf_counter() - began)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d in %.1f ms", len(work), (time.perf_counter() - began) * 1000)

    def _process(self, batch: list[ops.Operation]) -> None:
        try:
            deliveries = self._transaction(batch)
        except Exception as exc:
            if is_unreachable(exc):
                self._database_lost(batch, exc)
                return
            if len(batch) > 1:
                # One bad operation (or a lost race with another control plane) must not
                # fail the others: retry each alone.
                log.info("batch of %d failed (%s); retrying one by one", len(batch), exc)
                for index, operation in enumerate(batch):
                    if self._retry_at is not None:
                        # The database went away meanwhile: the rest waits for it.
                        self._database_lost(batch[index:], None)
                        return
                    self._process([operation])
                return
            if not _retriable(exc):
                self._fail(batch, exc)
                return
            log.warning("transaction failed, retrying once: %s", exc)
            try:
                deliveries = self._transaction(batch)
            except Exception as again:
                if is_unreachable(again):
                    self._database_lost(batch, again)
                else:
                    self._fail(batch, again)
                return
        self._database_reached()
        calls = LoopCalls()
        deliver(deliveries, self.sessions, calls)
        self.watches.changed(deliveries.run_news, calls)
        calls.flush()

    def _database_lost(self, batch: list[ops.Operation], exc: BaseException | None) -> None:
        """The batch could not reach the database: its callers are told so at once, what
        workers sent is kept for the next try, which the backoff schedules."""
        if exc is not None:
            DATABASE.lost(exc)
        unavailable = errors.Unavailable("the database is unavailable; try again")
        for operation in batch:
            if operation.future is not None:
                self._forget_refused_session(operation)
                resolve(operation, exc=unavailable)
            elif not isinstance(operation, _Tick):
                self._held.append(operation)
        if len(self._held) > MAX_HELD:
            dropped = len(self._held) - MAX_HELD
            del self._held[:dropped]
            log.warning("database away: %d worker message(s) dropped, the oldest", dropped)
        if self._retry_at is None:
            self._retry_at = time.monotonic() + self._backoff.next()

    def _try_again(self) -> None:
        """The backoff is over: what was kept (and any caller since) goes in one more try,
        without reaping, so that the heartbeats kept extend leases before any is judged
        lost (the control plane, not the worker, failed to record them)."""
        held, self._held = self._held, []
        self._retry_at = None
        if not held:
            held = [_TICK]  # a probe: the transaction is the question
        for start in range(0, len(held), MAX_BATCH):
            if self._retry_at is not None:
                self._database_lost(held[start:], None)
                return
            self._process(held[start : start + MAX_BATCH])

    def _database_reached(self) -> None:
        if DATABASE.down or self._backoff.tries:
            DATABASE.reached()
            self._backoff.reset()
            self._reaper.postpone()

    def _fail(self, batch: list[ops.Operation], exc: BaseException) -> None:
        if not isinstance(exc, errors.Refusal):
            log.error("operation failed: %s", exc, exc_info=exc)
        for operation in batch:
            self._forget_refused_session(operation)
            resolve(operation, exc=exc)

    def _forget_refused_session(self, operation: ops.Operation) -> None:
        # A stream whose OpenSession fails ends without closing the session that the
        # operation added before its transaction: it must not stay behind.
        if isinstance(operation, ops.OpenSession):
            session = self.sessions.remove(operation.session.id)
            if session is not None:
                session.closed = True

    def _transaction(self, batch: list[ops.Operation]) -> Deliveries:
        now = time.time()
        for operation in batch:
            operation.change_sessions(self.sessions, self._handout)
        reap = self._reaper.due() and not self._backoff.tries
        with self._db.transaction() as connection:
            txn = Transaction(connection, now, self._resources)
            expired = self._reaper.expired(connection, now) if reap else []
            due = waiting.due_timers(connection, now) if self._timers.due(now) else []
            txn.apply(batch, expired, due)
            self._handout.assign(txn.batch, txn.out)
            # Each task leased now starts an attempt: in history from this moment on.
            txn.batch.attempts_started(row for rows in txn.out.tasks.values() for row in rows)
            # Reads after the writes (the runs operators are answered with, the timers left
            # after reaping) need their results: such batches are not pipelined.
            plain = reap or txn.reads_back
            with contextlib.nullcontext() if plain else self._db.writes(connection):
                txn.flush()
                if reap:
                    self._timers.refresh(connection)
                    self._reaper.tidy(connection, now)
                if self._lock_rows and any(
                    t["status"] == "ready" for t in txn.batch.new_tasks.values()
                ):
                    notify_tasks_ready(connection, self.origin)
                if self._lock_rows and txn.batch.status_before:
                    # For the streams of other control planes that follow these runs.
                    notices = notices_of(txn.batch.runs.values(), txn.batch.status_before)
                    notify_runs_changed(connection, self.origin, notices)
                if self._lock_rows and txn.batch.cancelled_tasks:
                    # Attempts held by streams of other control planes: they tell them.
                    reasons = txn.batch.cancel_reasons
                    elsewhere = {
                        task_id: reasons.get(task_id, "")
                        for task_id in txn.batch.cancelled_tasks
                        if self.sessions.holder_of(task_id) is None
                    }
                    if elsewhere:
                        notify_cancels(connection, self.origin, elsewhere)
                connection.commit()
        self._resources.runs.keep(txn.batch.runs.values())
        self._timers.committed(txn.batch.waits.earliest_timer, len(due), now)
        if reap:
            self._reaper.reaped()
        txn.out.cancels.extend(txn.batch.cancelled_tasks)
        txn.out.cancel_reasons.update(txn.batch.cancel_reasons)
        for operation, result in txn.out.results:
            if isinstance(operation, ops.StartRun) and isinstance(result, StartedRun):
                # Before any later commit of the run: a start that waits misses no change.
                operation.follow(self.watches, result)
        txn.out.run_news = self._news_for_watches(txn)
        if appended := txn.batch.appended_runs:
            # Runs that only got an ATTEMPT_STARTED (their task claimed from the table): their
            # streams read it now rather than with the run's next change.
            self.watches.wake(self.watches.watched(appended))
        self.watches.lists.committed(txn.batch.runs.values(), txn.batch.status_before)
        if self.instruments is not None:
            self.instruments.committed(txn.batch, txn.out)
        return txn.out

    def _news_for_watches(self, txn: Transaction) -> dict[str, RunNews]:
        """What the transaction did to the runs that WatchRun streams of this process follow."""
        batch = txn.batch
        watched = self.watches.watched(r for r, loaded in batch.runs.items() if loaded.dirty)
        if not watched:
            return {}
        rows = batch.history_rows(watched)
        return {
            run_id: RunNews(
                batch.runs[run_id].state.status,
                batch.runs[run_id].last_seq,
                rows[run_id],
                batch.runs[run_id].state.output,
            )
            for run_id in watched
        }


class _Tick(ops.Operation):
    """Wakes the committer for timers and reaping."""


_TICK = _Tick()


def _retriable(exc: BaseException) -> bool:
    """Deadlocks, serialization failures and lost insert races between control planes are
    worth one more try: the second attempt sees what the other one committed."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, DBAPIError) and code in {"40001", "40P01"}
