"""WatchRun on WorkflowService: a run's history from a seq on, live, until the run ends.

A stream subscribes to its run in this process's committer (`RunWatches`) before its first
read, so a commit that lands between the read and the wait still wakes it: no event is
missed and none waits for a poll. A wake brings the commit's news (its history rows, the
run's status): when they continue from the last event sent they go out as they are, with no
read; otherwise (the first round, a gap) one read gets the run's status and the events after
the last one sent (`store.history_tail`), never one read per event. A run nobody watches
costs nothing. A commit made by another control plane sharing the database wakes the
stream by its NOTIFY on PostgreSQL (`dispatch/run_notices.py`), and the stream reads. As a
safety net the stream also reads again after a while without a wake: `REREAD_SECONDS` where
nothing else tells it (SQLite, or the LISTEN connection down), `NOTIFIED_REREAD_SECONDS`
while notices arrive.

Messages hold consecutive events; a history longer than `PAGE_EVENTS` after the last seq
sent goes out in several messages, one right after the other. Only the last of them carries
the run's status: the others say RUN_STATUS_UNSPECIFIED, since the status the run had after
their last event is known from no row (a client must not take a status that belongs to
later events for theirs, e.g. end on COMPLETED before it has the RUN_COMPLETED event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial
from types import SimpleNamespace

import grpc
from sqlalchemy import Connection
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert
from controlplane.api.backend import Backend
from controlplane.api.namespaces import checked_namespace
from controlplane.api.runs import no_run
from controlplane.dispatch.run_watches import RunNews
from controlplane.engine.state import TERMINAL
from controlplane.store.history_tail import HistoryTail, read_tail

# Events per message: a long history goes out in pages that stay far below the message
# size limit, and a slow client holds no more than a page in the server's memory.
PAGE_EVENTS = 500
# How long a stream waits for a wake from this process before it reads again anyway: the
# events of another control plane on the same database arrive at most this late. Tests
# lengthen it to show that the wake, not this re-read, carries this process's events.
REREAD_SECONDS = 1.0
# The same while other control planes' commits wake the stream as they happen.
NOTIFIED_REREAD_SECONDS = 10.0


async def watch(
    backend: Backend, request: ws.WatchRunRequest, context: grpc.aio.ServicerContext
) -> AsyncIterator[ws.WatchRunResponse]:
    """Events after `request.after_seq` as they commit; ends after the run's final event.

    Raises:
        InvalidArgument: a malformed namespace, no run id, a negative after_seq.
        NotFound: no such run in the namespace (also if it goes away while watched).
    """
    namespace = checked_namespace(request.namespace)
    if not request.run_id:
        raise errors.InvalidArgument.field("run_id", "is required")
    if request.after_seq < 0:
        raise errors.InvalidArgument.field("after_seq", "must not be negative")
    run_id = request.run_id
    watches = backend.committer.watches
    watch = watches.subscribe(run_id)
    # Also when the call ends while this generator is suspended at a `yield` (a client that
    # hangs up then): its `finally` would wait for the generator to be collected.
    context.add_done_callback(lambda _: watches.unsubscribe(run_id, watch))  # type: ignore[arg-type]
    try:
        sent = request.after_seq
        first = True
        while True:
            # Cleared before the news are taken: a commit after this point sets it again,
            # so whatever this round misses wakes the wait that follows it.
            watch.woken.clear()
            tail = _from_news(watch.take(), sent)
            if tail is None:
                tail = await backend.read(partial(_read, namespace, run_id, sent))
            if tail is None:
                raise errors.NotFound(no_run(run_id, namespace))
            caught_up = _caught_up(tail, sent)
            if tail.events or first:
                # The first message goes out even without events: the client learns the
                # status, and that it is watching from now on.
                yield _message(tail, caught_up)
                if tail.events:
                    sent = tail.events[-1].seq
            first = False
            if not caught_up:
                continue  # the next page at once
            if tail.status in TERMINAL and not request.keep_open:
                return
            # On timeout: the re-read for commits made elsewhere that nothing announced.
            reread = REREAD_SECONDS
            if watches.listening:
                reread = max(reread, NOTIFIED_REREAD_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.woken.wait(), reread)
    finally:
        watches.unsubscribe(run_id, watch)


def _from_news(news: list[RunNews], sent: int) -> HistoryTail | None:
    """The tail after `sent` from what this process's commits handed over, without a read;
    None if they do not continue exactly from `sent` (a read is needed).

    The first round of a stream never has news (it subscribed with no await since), so the
    run's namespace has been checked by a read before any news is used.
    """
    if not news:
        return None
    last = news[-1]
    if last.last_seq <= sent:
        return HistoryTail(last.status, last.last_seq, [])
    rows = [row for item in news for row in item.rows if row["seq"] > sent]
    if len(rows) > PAGE_EVENTS or [row["seq"] for row in rows] != list(
        range(sent + 1, last.last_seq + 1)
    ):
        return None
    return HistoryTail(last.status, last.last_seq, [SimpleNamespace(**row) for row in rows])


def _read(
    namespace: str, run_id: str, after_seq: int, connection: Connection
) -> HistoryTail | None:
    return read_tail(connection, namespace, run_id, after_seq, PAGE_EVENTS)


def _caught_up(tail: HistoryTail, sent: int) -> bool:
    """Whether this read reached the run's last committed event."""
    last = tail.events[-1].seq if tail.events else sent
    return last >= tail.last_seq


def _message(tail: HistoryTail, caught_up: bool) -> ws.WatchRunResponse:
    status = (
        run_pb2.RunStatus.Value(f"RUN_STATUS_{tail.status}")
        if caught_up
        else run_pb2.RUN_STATUS_UNSPECIFIED
    )
    return ws.WatchRunResponse(
        events=[convert.history_event(row) for row in tail.events], status=status
    )
