"""WatchRuns on WorkflowService: the runs a filter selects, live, for a runs table.

The stream subscribes first (`dispatch/run_list_watches.py`), then reads the matching runs
newest first (up to `initial_limit`) and how many match: its first message, `initial` true.
From then on it sends what its subscription receives: each run whose summary changed, as
its transaction committed on this control plane or another one (`dispatch/run_notices.py`),
coalesced per run while the client reads the previous message, at most `PAGE_CHANGES` runs a
message. No message is sent for a run that neither matches now nor matched before.

A run's membership is its status against `filter.statuses` (its other fields never change):
a change whose run matched before and no longer does is `left_filter`, and `total` follows
the runs that entered and left. Limits of `total`: a change committed while the first read
runs may be counted in it as well as in the change (rare, and only for runs the first page
does not show); a change found only by the safety-net re-read, of a run whose status before
this process never saw, moves no total.

With `count_by_status`, every message also says how many runs each status holds among
those the filter's fields other than `statuses` select: a runs table's counts above it, with
no request of the client's. They are counted once (one GROUP BY on the index (namespace,
status): index-only when the namespace is the only other filter), then moved from each
change's status before to its status after, with the same limits as `total`. Without a
status filter they come with the first message and sum to its total; with one, the first
message does not wait for them (its runs are a range of the status index, the counts every
run of the namespace) and they follow in a message without changes.

A client that falls more than `MAX_PENDING` runs behind (it does not read) is resynced: what
was pending is dropped and the stream sends a new first message (`initial` true, the runs
and total read again), which replaces everything the client had. The stream does not end
for it, and the committer never waits for it.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from functools import partial

import grpc
from sqlalchemy import Connection
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert, run_filters
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.dispatch.run_list_watches import UNKNOWN, RunSummary, SummaryChange
from controlplane.store import run_queries
from controlplane.store.run_queries import RunSelection

DEFAULT_INITIAL = 100
MAX_INITIAL = 1000
# Runs per message after the first: a burst of changes goes out in several messages.
PAGE_CHANGES = 500
# Runs whose last seq sent a stream remembers.
SENT_KEPT = 5000


async def watch(
    backend: Backend, request: ws.WatchRunsRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[ws.WatchRunsResponse]:
    """The matching runs now, then their changes as they commit; never ends by itself.

    Raises:
        InvalidArgument: a malformed namespace or filter field, an initial_limit out of range.
    """
    namespace = checked_namespace(request.namespace)
    selection = run_filters.checked_selection(namespace, request.filter, "filter.")
    if not 0 <= request.initial_limit <= MAX_INITIAL:
        raise errors.InvalidArgument.field(
            "initial_limit", f"must be between 0 and {MAX_INITIAL} (0 means {DEFAULT_INITIAL})"
        )
    limit = request.initial_limit or DEFAULT_INITIAL
    counting = request.count_by_status
    watches = backend.committer.watches
    watch = watches.subscribe_list(selection)
    # Also when the call ends while this generator is suspended at a `yield` (a client that
    # hangs up then): its `finally` would wait for the generator to be collected.
    context.add_done_callback(lambda _: watches.lists.unsubscribe(watch))  # type: ignore[arg-type]
    try:
        table = _Table(selection)
        while True:
            if table.total is None:
                # Cleared before the read: what commits during it wakes the next round.
                watch.woken.clear()
                first = await backend.read(partial(_first, selection, limit, counting))
                during, _ = watch.take()
                yield table.first_message(first)
                changes = table.after_first(first.page, during)
            else:
                await watch.woken.wait()
                watch.woken.clear()
                changes, overflowed = watch.take()
                if overflowed:
                    table.total = None
                    continue
            for message in table.messages(changes):
                yield message
            if counting and table.counts is None:
                # A status filter's runs went out without waiting for every status's count
                # (a read of all the runs its other fields select); the counts follow.
                table.counts = await backend.read(
                    partial(run_queries.counts_by_status, selection=selection)
                )
                yield table.counts_message()
    finally:
        watches.lists.unsubscribe(watch)


@dataclass(frozen=True)
class _FirstRead:
    page: list[RunSummary]
    total: int
    # Runs by status among those the filter's other fields select; None: not counted.
    counts: dict[str, int] | None


def _first(
    selection: RunSelection, limit: int, counting: bool, connection: Connection
) -> _FirstRead:
    """The newest `limit` runs of the selection and how many it holds (and, `counting`
    without a status filter, how many each status holds). Counted first when statuses are
    asked for: how many match decides how the page is read (run_queries.page_query)."""
    counts = None
    total: int | None = None
    if counting and not selection.statuses:
        # Every status is shown: the counts are the total's parts, one statement for both.
        counts = run_queries.counts_by_status(connection, selection)
        total = sum(counts.values())
    elif selection.statuses:
        total = run_queries.count_runs(connection, selection)
    rows, more = run_queries.page_of_runs(
        connection, selection, limit, columns=run_queries.SUMMARY, matching=total
    )
    if total is None:
        total = run_queries.count_runs(connection, selection) if more else len(rows)
    return _FirstRead([RunSummary.of_row(row) for row in rows], total, counts)


class _Table:
    """What the client was told: the total (None before the first message or a resync), and
    the last seq of the runs it was told of lately, so that a change it has (a re-read
    finds the runs of the first message again) is not sent twice."""

    def __init__(self, selection: RunSelection) -> None:
        self.selection = selection
        self.total: int | None = None
        # Runs by status (the filter's statuses aside); None when the client did not ask.
        self.counts: dict[str, int] | None = None
        self._sent: OrderedDict[str, int] = OrderedDict()

    def first_message(self, first: _FirstRead) -> ws.WatchRunsResponse:
        """The message of a first read (the stream's first, or a resync's)."""
        self.total, self.counts = first.total, first.counts
        told = [ws.RunChange(run=_run(summary)) for summary in first.page]
        return self._message(told, initial=True)

    def counts_message(self) -> ws.WatchRunsResponse:
        """The counts alone (read after the first message)."""
        return self._message([])

    def _message(self, told: list[ws.RunChange], initial: bool = False) -> ws.WatchRunsResponse:
        assert self.total is not None
        message = ws.WatchRunsResponse(changes=told, initial=initial, total=self.total)
        if self.counts is not None:
            counts = self.counts
            message.counts_by_status.extend(
                ws.StatusCount(status=value, count=counts.get(status, 0))
                for status, value in _STATUSES
            )
        return message

    def _move(self, change: SummaryChange) -> bool:
        """Counts the change's run in its status after instead of before; whether a count
        moved (not for a status before nobody knows: as for `total`, no move)."""
        counts, before, after = self.counts, change.before, change.summary.status
        if counts is None or before in (UNKNOWN, after):
            return False
        if before is not None:
            counts[before] = max(0, counts.get(before, 0) - 1)
        counts[after] = counts.get(after, 0) + 1
        return True

    def _told(self, summary: RunSummary) -> None:
        self._sent[summary.id] = summary.last_seq
        self._sent.move_to_end(summary.id)
        if len(self._sent) > SENT_KEPT:
            self._sent.popitem(last=False)

    def after_first(
        self, page: list[RunSummary], during: list[SummaryChange]
    ) -> list[SummaryChange]:
        """Of the changes received while the first message was read, those it does not
        show already; a run it shows was, before them, what it shows."""
        self._sent.clear()
        for summary in page:
            self._told(summary)
        shown = {summary.id: summary for summary in page}
        later = []
        for change in during:
            seen = shown.get(change.summary.id)
            if seen is None:
                later.append(change)
            elif change.summary.last_seq > seen.last_seq:
                later.append(SummaryChange(change.summary, seen.status))
        return later

    def messages(self, changes: Iterable[SummaryChange]) -> Iterable[ws.WatchRunsResponse]:
        """The changes the client is told of, `PAGE_CHANGES` a message, each message with
        the total (and counts) after its changes; counts that moved with no run to tell
        go out in a message without changes."""
        assert self.total is not None
        total = self.total
        told: list[ws.RunChange] = []
        moved = False
        for change in changes:
            summary = change.summary
            if summary.last_seq <= self._sent.get(summary.id, 0):
                continue
            moved = self._move(change) or moved
            now = self.selection.shows(summary.status)
            before = now if change.before == UNKNOWN else self.selection.shows(change.before)
            if now:
                told.append(ws.RunChange(run=_run(summary)))
                total += 0 if before else 1
            elif before:
                told.append(ws.RunChange(run=_run(summary), left_filter=True))
                # Never below zero, whatever a change counted twice (see the module's doc).
                total = max(0, total - 1)
            else:
                continue
            self._told(summary)
            if len(told) == PAGE_CHANGES:
                self.total = total
                yield self._message(told)
                told, moved = [], False
        self.total = total
        if told or moved:
            yield self._message(told)


# Every status a count is said of, as the runs table writes it and as the API does.
_STATUSES = [
    (name.removeprefix("RUN_STATUS_"), value)
    for name, value in run_pb2.RunStatus.items()
    if value != run_pb2.RUN_STATUS_UNSPECIFIED
]


@functools.lru_cache(maxsize=4096)
def _run(summary: RunSummary) -> run_pb2.Run:
    """The converter ListRuns uses, on a summary without input and output; once per change
    for all the streams it goes to (each message copies the result, never changes it)."""
    return convert.run_summary(summary)  # type: ignore[arg-type]
