"""Runs changed by other control planes sharing the database, brought to this process's
watchers: LISTEN/NOTIFY on PostgreSQL, a re-read of what changed lately everywhere.

Every transaction that changes runs on PostgreSQL notifies the `surefoot_runs` channel
with each run's namespace, id, status before and after (several notices when a batch is
large: a payload stays under PostgreSQL's 8000 bytes). A control plane with watchers holds
one LISTEN connection (a thread), started when its first stream subscribes:

- `WatchRun` streams (and StartRun calls that wait) of a run named in a notice are woken
  and read the run's new events at once, instead of at their next re-read;
- for `WatchRuns` streams, the runs of watched namespaces are read once here (one indexed
  read per batch of notices, whatever the number of streams) and handed to them.

As a safety net (a notice lost with the LISTEN connection, a second process on one SQLite
file), a feed thread re-reads the runs of watched namespaces updated since its last look
(minus `MARGIN_SECONDS` for transactions that committed late, or clocks apart): every
`SAFETY_SECONDS` while the LISTEN connection is up, every `POLL_SECONDS` otherwise (SQLite
has no NOTIFY: this is its only way). What the re-read finds that was passed on already is
dropped by `RunListWatches`. Once the LISTEN connection is up, and again each time it is
re-established, the re-read runs at once for what committed before it listened; after a
lost connection every WatchRun stream also reads once.

Cost: one `pg_notify` per batch that changed runs, on the connection that commits it, and
nothing else while no stream is open; a re-read costs the runs that changed, never the
runs that wait (the index (namespace, updated_at, id), migration 0016).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, text

from controlplane.dispatch.run_list_watches import (
    UNKNOWN,
    RunListWatches,
    RunSummary,
    SummaryChange,
)
from controlplane.store import run_queries
from controlplane.store.codec import to_datetime
from controlplane.store.database import reader
from controlplane.store.reachability import DATABASE, Backoff, is_unreachable, reason

log = logging.getLogger("surefoot.run_notices")

CHANNEL = "surefoot_runs"
# PostgreSQL refuses payloads of 8000 bytes and more.
MAX_PAYLOAD = 7800
CONNECT_TIMEOUT = 10
# How long the listener waits for notices before it checks whether it should stop.
LISTEN_TICK = 0.5
SAFETY_SECONDS = 10.0
POLL_SECONDS = 1.0
MARGIN_SECONDS = 2.0
# Runs read per statement of a re-read.
REREAD_PAGE = 1000
# Notices waiting for the feed thread, at most.
MAX_QUEUED = 10_000


@dataclass(frozen=True)
class RunNotice:
    namespace: str
    run_id: str
    # None: the run is new.
    before: str | None
    status: str


def notices_of(runs: Iterable[Any], before: dict[str, str | None]) -> list[RunNotice]:
    """A notice per run a batch changed (`runs`: its LoadedRuns; `before`: their status when
    loaded, which only changed runs have)."""
    return [
        RunNotice(loaded.state.namespace, loaded.state.id, before[run_id], loaded.state.status)
        for loaded in runs
        if (run_id := loaded.state.id) in before
    ]


def notify_runs_changed(connection: Connection, origin: str, notices: list[RunNotice]) -> None:
    """Queue the notices; PostgreSQL delivers them when the transaction commits."""
    for payload in payloads(origin, notices):
        connection.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


def payloads(origin: str, notices: list[RunNotice]) -> list[str]:
    """The origin on the first line, then one tab-separated line per run (namespaces,
    run ids and statuses hold no tab nor newline)."""
    found: list[str] = []
    lines: list[str] = []
    size = len(origin)
    for notice in notices:
        line = f"{notice.namespace}\t{notice.run_id}\t{notice.before or ''}\t{notice.status}"
        if lines and size + len(line) + 1 > MAX_PAYLOAD:
            found.append("\n".join([origin, *lines]))
            lines, size = [], len(origin)
        lines.append(line)
        size += len(line) + 1
    if lines:
        found.append("\n".join([origin, *lines]))
    return found


def parse(payload: str) -> tuple[str, list[RunNotice]]:
    """The origin of a payload and its notices (lines that are not four fields are skipped:
    a newer control plane may say more)."""
    origin, _, rest = payload.partition("\n")
    notices = []
    for line in rest.split("\n"):
        fields = line.split("\t")
        if len(fields) == 4 and fields[1] and fields[3]:
            notices.append(RunNotice(fields[0], fields[1], fields[2] or None, fields[3]))
    return origin, notices


class RunFeed:
    """The threads that bring other processes' run changes to this process's streams.

    Args:
        engine: The database; LISTEN on PostgreSQL, re-reads only on SQLite.
        origin: This process's name in payloads: its own notices wake nobody here.
        lists: The WatchRuns streams' registry.
        wake_runs: Wakes the WatchRun streams of these run ids (None: of every run).
    """

    def __init__(
        self,
        engine: Engine,
        origin: str,
        lists: RunListWatches,
        wake_runs: Callable[[set[str] | None], None],
    ) -> None:
        self._engine = engine
        self._origin = origin
        self._lists = lists
        self._wake_runs = wake_runs
        self._postgres = engine.dialect.name == "postgresql"
        # Bounded: past it (a feed thread stuck on a slow read) notices are dropped, and
        # every stream reads once instead, as after a lost LISTEN connection.
        self._inbox: queue.Queue[_Item] = queue.Queue(maxsize=MAX_QUEUED)
        self._dropped = threading.Event()
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._threads = [threading.Thread(target=self._feed, name="surefoot-run-feed", daemon=True)]
        if self._postgres:
            self._threads.append(
                threading.Thread(target=self._listen, name="surefoot-run-listener", daemon=True)
            )
        # Wall-clock time the next re-read starts from.
        self._since = time.time() - MARGIN_SECONDS

    @property
    def listening(self) -> bool:
        """Whether other control planes' changes arrive as they commit (PostgreSQL, with the
        LISTEN connection up)."""
        return self._listening.is_set()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)

    # -- the listener thread (PostgreSQL) ------------------------------------------------

    def _listen(self) -> None:
        url = self._engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        backoff = Backoff()
        reconnecting = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    backoff.reset()
                    self._listening.set()
                    # What committed before this LISTEN (or while it was away) was heard by
                    # nobody: a re-read finds it for the runs tables, and after a lost
                    # connection every WatchRun stream reads once (before the first one,
                    # they waited no longer than REREAD_SECONDS).
                    self._put(_RECONNECTED if reconnecting else _LISTENING)
                    reconnecting = True
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=LISTEN_TICK):
                            self._put(notice.payload)
            except psycopg.Error as exc:
                self._listening.clear()
                if is_unreachable(exc):
                    DATABASE.lost(exc)
                else:
                    log.warning("run change listener failed (%s); listening again", reason(exc))
                self._stopping.wait(backoff.next())
        self._listening.clear()

    def _put(self, item: _Item) -> None:
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            if item is _STOP:
                self._inbox.get_nowait()
                self._inbox.put_nowait(item)
            self._dropped.set()

    # -- the feed thread -----------------------------------------------------------------

    def _feed(self) -> None:
        next_reread = time.monotonic() + POLL_SECONDS
        while True:
            try:
                first = self._inbox.get(timeout=max(0.0, next_reread - time.monotonic()))
            except queue.Empty:
                first = None
            items = [] if first is None else [first]
            while True:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if _STOP in items:
                return
            caught_up = _RECONNECTED in items
            if self._dropped.is_set():
                self._dropped.clear()
                caught_up = True
            reread = caught_up or _LISTENING in items or time.monotonic() >= next_reread
            try:
                if caught_up:
                    self._wake_runs(None)
                self._noticed([item for item in items if isinstance(item, str)])
                if reread:
                    self._reread()
            except Exception as exc:
                # What this round should have passed on is lost: the next one wakes every
                # stream and re-reads, as after a lost LISTEN connection.
                self._dropped.set()
                if is_unreachable(exc):
                    DATABASE.lost(exc)
                else:
                    log.warning("live runs feed failed (%s)", reason(exc), exc_info=exc)
            if reread:
                wait = SAFETY_SECONDS if self.listening else POLL_SECONDS
                next_reread = time.monotonic() + wait

    def _noticed(self, payloads: list[str]) -> None:
        """Notices of other control planes: wake the WatchRun streams of their runs, read
        the runs of watched namespaces once for the WatchRuns streams."""
        befores: dict[str, str | None] = {}
        run_ids: set[str] = set()
        namespaces = self._lists.namespaces()
        for payload in payloads:
            origin, notices = parse(payload)
            if origin == self._origin:
                continue
            for notice in notices:
                run_ids.add(notice.run_id)
                if notice.namespace in namespaces:
                    # The first notice of a run says what it was before all of them.
                    befores.setdefault(notice.run_id, notice.before)
        if run_ids:
            self._wake_runs(run_ids)
        if not befores:
            return
        with reader(self._engine).connect() as connection:
            rows = run_queries.summaries_by_id(connection, sorted(befores))
        self._lists.publish(
            [SummaryChange(RunSummary.of_row(row), befores[row.id]) for row in rows]
        )

    def _reread(self) -> None:
        """The runs of watched namespaces updated since the last re-read (and a margin)."""
        started = time.time()
        namespaces = self._lists.namespaces()
        if not namespaces:
            self._since = started - MARGIN_SECONDS
            return
        since = to_datetime(self._since)
        with reader(self._engine).connect() as connection:
            for namespace in sorted(namespaces):
                self._reread_namespace(connection, namespace, since)
        self._since = started - MARGIN_SECONDS

    def _reread_namespace(self, connection: Connection, namespace: str, since: datetime) -> None:
        after_id = ""
        while not self._stopping.is_set():
            rows = run_queries.changed_since(connection, namespace, since, after_id, REREAD_PAGE)
            self._lists.publish([SummaryChange(RunSummary.of_row(row), UNKNOWN) for row in rows])
            if len(rows) < REREAD_PAGE:
                return
            since, after_id = rows[-1].updated_at, rows[-1].id


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_STOP = _Marker("stop")
# The LISTEN connection is up, for the first time or again.
_LISTENING = _Marker("listening")
_RECONNECTED = _Marker("reconnected")
_Item = str | _Marker
