"""Who waits for news of a run in this process: the `WatchRun` streams (and, through
`lists`, the `WatchRuns` streams of runs tables).

A stream registers the run it follows and waits on an asyncio event; once a transaction that
changed runs has committed, the committer thread hands each watched run's news to its
streams: the history rows the transaction wrote, the run's status and last seq after them.
A stream that has sent everything up to those rows sends them as they are, with no read of
the database; one that missed something (a commit of another control plane, news from
before it subscribed) reads. A run nobody watches costs one dictionary lookup per commit that
changed it, and nothing at all when no stream is open.

Another control plane's commits reach the streams through `run_notices.RunFeed` (NOTIFY on
PostgreSQL), started with the first stream: it wakes the streams of the runs it names, which
then read. A stream that does not take its news (a slow client) keeps at most `MAX_NEWS` of
them: past that they are dropped and the stream reads from the database instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from controlplane.dispatch.loop_calls import LoopCalls
from controlplane.dispatch.run_list_watches import ListWatch, RunListWatches
from controlplane.dispatch.run_notices import RunFeed
from controlplane.store.run_queries import RunSelection

# News a stream may hold before they are dropped for a read.
MAX_NEWS = 1000


@dataclass(frozen=True)
class RunNews:
    """What one commit did to a run: its history rows (in seq order), and the run's status
    and last seq once they are applied."""

    status: str
    last_seq: int
    rows: list[dict[str, Any]]
    # The run's output (None until it completes).
    output: Any = None


@dataclass(eq=False)
class Watch:
    """One stream's subscription (its event loop's side)."""

    run_id: str
    loop: asyncio.AbstractEventLoop
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    news: list[RunNews] = field(default_factory=list)

    def take(self) -> list[RunNews]:
        """The news received since the last call, oldest first (on the event loop)."""
        news, self.news = self.news, []
        return news

    def _receive(self, news: RunNews) -> None:
        if len(self.news) >= MAX_NEWS:
            # A gap: the stream's next round finds the news do not continue what it sent,
            # and reads.
            self.news.clear()
        self.news.append(news)
        self.woken.set()


class RunWatches:
    """The streams of this process that follow runs.

    Args:
        engine: The database other control planes may commit to; None for none (no feed).
        origin: This process's name in NOTIFY payloads.
    """

    def __init__(self, engine: Engine | None = None, origin: str = "") -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, list[Watch]] = {}
        self.lists = RunListWatches()
        self._engine = engine
        self._origin = origin
        self._feed: RunFeed | None = None
        self._closed = False

    def subscribe(self, run_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Watch:
        """A subscription to `run_id`'s news, waited on in `loop` (default: the running
        one). The committer subscribes for a StartRun that waits, in the thread that will
        commit the run's next change, so that no change falls between start and subscription."""
        watch = Watch(run_id, loop or asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(run_id, []).append(watch)
        self._start_feed()
        return watch

    def subscribe_list(self, selection: RunSelection) -> ListWatch:
        """A WatchRuns stream's subscription to the runs of `selection`, on the running loop."""
        watch = self.lists.subscribe(selection)
        self._start_feed()
        return watch

    @property
    def listening(self) -> bool:
        """Whether other control planes' commits wake the streams as they happen."""
        return self._feed is not None and self._feed.listening

    def close(self) -> None:
        """Stop the feed (the committer stops); the streams get nothing more."""
        with self._lock:
            feed, self._feed, self._closed = self._feed, None, True
        if feed is not None:
            feed.stop()

    def _start_feed(self) -> None:
        if self._feed is not None or self._engine is None or self._closed:
            return
        with self._lock:
            if self._feed is not None or self._closed:
                return
            self._feed = RunFeed(self._engine, self._origin, self.lists, self.wake)
            self._feed.start()

    def unsubscribe(self, run_id: str, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(run_id)
            if watches is not None and watch in watches:
                watches.remove(watch)
                if not watches:
                    del self._watches[run_id]

    def followed(self) -> set[str]:
        """Every run some stream follows (any thread)."""
        with self._lock:
            return set(self._watches)

    def watched(self, run_ids: Iterable[str]) -> set[str]:
        """Which of `run_ids` some stream follows (any thread)."""
        if not self._watches:
            return set()
        with self._lock:
            return {run_id for run_id in run_ids if run_id in self._watches}

    def wake(self, run_ids: set[str] | None) -> None:
        """Wake the streams of `run_ids` (None: every stream) without news, so that they read
        what another process committed (any thread)."""
        with self._lock:
            if run_ids is None:
                targets = [w for watches in self._watches.values() for w in watches]
            else:
                targets = [w for r in run_ids for w in self._watches.get(r, ())]
        calls = LoopCalls()
        for watch in targets:
            calls.add(watch.loop, watch.woken.set)
        calls.flush()

    def changed(self, news: dict[str, RunNews], calls: LoopCalls) -> None:
        """News of runs a commit changed (any thread): hand it to their streams, through
        `calls` (the stream's list and event belong to its loop: both change there)."""
        if not news:
            return
        with self._lock:
            targets = [(w, n) for run_id, n in news.items() for w in self._watches.get(run_id, ())]
        for watch, run_news in targets:
            calls.add(watch.loop, watch._receive, run_news)
