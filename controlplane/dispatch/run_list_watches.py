"""Who watches lists of runs in this process (`WatchRuns` streams), and what they are told.

Every change to a run's summary reaches this registry by one of three ways: this process's
committer after each commit (with the status each run had before it), another control
plane's NOTIFY (its run ids and statuses; the summaries are read once here for every
stream), or the safety-net re-read of what changed lately (`run_feed`). The registry keeps,
per watched namespace, the last seq and status it passed on for each run (a bounded LRU): a
change seen twice, or an older one arriving after a newer one by another way, is dropped,
and a run's "status before" is the one its watchers were last told of, whichever way it
came.

Each stream holds what it has not sent yet, coalesced per run (the newest summary, the
oldest "before"), filtered on its loop by the fields of a run that never change. A stream
that falls more than `MAX_PENDING` runs behind drops them and starts over with a fresh
first message (a resync): the committer never waits for a stream and no stream holds more
than that.

Nothing here costs anything while no stream is open: the committer asks `watching` (one
dictionary test) before it builds a summary.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controlplane.dispatch.loop_calls import LoopCalls
from controlplane.store.codec import dump_json, optional_datetime, to_datetime
from controlplane.store.run_batch import LoadedRun
from controlplane.store.run_queries import RunSelection

log = logging.getLogger("surefoot.run_list_watches")

# A "before" nobody knows: the change was found by a re-read, of a run this process was
# told nothing of since its streams began. Its watchers take it as no change of membership.
UNKNOWN = "?"
# Runs a stream may have waiting to be sent before it is resynced instead.
MAX_PENDING = 10_000
# Runs per namespace whose last passed-on seq and status are kept.
KNOWN_RUNS = 50_000


@dataclass(frozen=True)
class RunSummary:
    """A run as a live table shows it: the attributes of a runs row that
    `convert.run_summary` reads, without input and output."""

    id: str
    namespace: str
    workflow_name: str
    workflow_version: str
    status: str
    request_id: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    last_error: str | None
    current_node: str | None
    trace_id: str
    waiting_for: str | None
    waiting_since: datetime | None
    last_seq: int
    input: None = None
    output: None = None

    @classmethod
    def of_row(cls, row: Any) -> RunSummary:
        return cls(
            id=row.id,
            namespace=row.namespace,
            workflow_name=row.workflow_name,
            workflow_version=row.workflow_version,
            status=row.status,
            request_id=row.request_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            closed_at=row.closed_at,
            last_error=row.last_error,
            current_node=row.current_node,
            trace_id=row.trace_id,
            waiting_for=row.waiting_for,
            waiting_since=row.waiting_since,
            last_seq=row.last_seq,
        )

    @classmethod
    def of_loaded(cls, loaded: LoadedRun) -> RunSummary:
        """The summary a committed run's row now holds, from what the committer wrote."""
        state = loaded.state
        return cls(
            id=state.id,
            namespace=state.namespace,
            workflow_name=state.workflow_name,
            workflow_version=state.workflow_version,
            status=state.status,
            request_id=loaded.request_id,
            created_at=to_datetime(state.created_at),
            updated_at=to_datetime(state.updated_at),
            closed_at=optional_datetime(state.closed_at),
            last_error=None if state.last_error is None else dump_json(state.last_error),
            current_node=state.current_node,
            trace_id=loaded.trace_id,
            waiting_for=state.waiting_for,
            waiting_since=optional_datetime(state.waiting_since),
            last_seq=loaded.last_seq,
        )


@dataclass(frozen=True)
class SummaryChange:
    summary: RunSummary
    # The run's status before the change (None: it did not exist; UNKNOWN).
    before: str | None


@dataclass(eq=False)
class ListWatch:
    """One stream's subscription (its event loop's side)."""

    selection: RunSelection
    loop: asyncio.AbstractEventLoop
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    pending: dict[str, SummaryChange] = field(default_factory=dict)
    # More than MAX_PENDING runs were waiting: what was pending is gone, resync.
    overflowed: bool = False

    def take(self) -> tuple[list[SummaryChange], bool]:
        """What changed since the last call (one per run, in arrival order), and whether
        some of it was dropped (on the event loop)."""
        pending, overflowed = list(self.pending.values()), self.overflowed
        self.pending, self.overflowed = {}, False
        return pending, overflowed

    def _receive(self, changes: list[SummaryChange]) -> None:
        holds = self.selection.holds
        pending = self.pending
        for change in changes:
            summary = change.summary
            if not holds(summary):
                continue
            earlier = pending.get(summary.id)
            if earlier is not None:
                # The oldest "before" with the newest summary: the change as a whole.
                change = SummaryChange(summary, earlier.before)
            elif len(pending) >= MAX_PENDING:
                self.pending, self.overflowed = {}, True
                break
            pending[summary.id] = change
        self.woken.set()


class RunListWatches:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, list[ListWatch]] = {}
        # Per watched namespace: run id -> (last seq, status) last passed on.
        self._known: dict[str, OrderedDict[str, tuple[int, str]]] = {}

    def subscribe(
        self, selection: RunSelection, loop: asyncio.AbstractEventLoop | None = None
    ) -> ListWatch:
        watch = ListWatch(selection, loop or asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(selection.namespace, []).append(watch)
            self._known.setdefault(selection.namespace, OrderedDict())
        return watch

    def unsubscribe(self, watch: ListWatch) -> None:
        namespace = watch.selection.namespace
        with self._lock:
            watches = self._watches.get(namespace)
            if watches is not None and watch in watches:
                watches.remove(watch)
                if not watches:
                    # Nobody hears of its runs from now on: what was known goes stale.
                    del self._watches[namespace]
                    del self._known[namespace]

    @property
    def watching(self) -> bool:
        """Whether any stream is open (any thread, without the lock: a hint)."""
        return bool(self._watches)

    def namespaces(self) -> set[str]:
        with self._lock:
            return set(self._watches)

    def committed(self, runs: Iterable[LoadedRun], before: dict[str, str | None]) -> None:
        """Runs this process's committer changed, once committed (committer thread).

        Never raises: the transaction has committed, and a committer that took an error
        here for the batch's would apply it again.
        """
        if not self._watches:
            return
        try:
            namespaces = self.namespaces()
            self.publish(
                [
                    SummaryChange(RunSummary.of_loaded(loaded), before.get(loaded.state.id))
                    for loaded in runs
                    if loaded.dirty and loaded.state.namespace in namespaces
                ]
            )
        except Exception:
            # The streams miss this change until the safety-net re-read finds it.
            log.exception("handing committed runs to the WatchRuns streams failed")

    def publish(self, changes: list[SummaryChange]) -> None:
        """Hand `changes` to the streams of their namespaces (any thread).

        Under the lock from the check to the hand-over, so that two threads publishing
        the same run cannot reach a stream in the other order than they were checked in.
        """
        if not changes:
            return
        calls = LoopCalls()
        with self._lock:
            passed: dict[str, list[SummaryChange]] = {}
            for change in changes:
                summary = change.summary
                known = self._known.get(summary.namespace)
                if known is None:
                    continue
                last = known.get(summary.id)
                if last is not None:
                    if summary.last_seq <= last[0]:
                        continue  # seen already, or older than what was passed on
                    change = SummaryChange(summary, last[1])
                known[summary.id] = (summary.last_seq, summary.status)
                known.move_to_end(summary.id)
                if len(known) > KNOWN_RUNS:
                    known.popitem(last=False)
                passed.setdefault(summary.namespace, []).append(change)
            for namespace, items in passed.items():
                for watch in self._watches.get(namespace, ()):
                    calls.add(watch.loop, watch._receive, items)
            calls.flush()
