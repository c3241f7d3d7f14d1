"""Who waits for news of a run in this process: the `WatchRun` streams.

A stream registers the run it follows and waits on an asyncio event; once a transaction that
changed runs has committed, the committer thread hands each watched run's news to its
streams: the history rows the transaction wrote, the run's status and last seq after them.
A stream that has sent everything up to those rows sends them as they are, with no read of
the database; one that missed something (a commit of another control plane, news from
before it subscribed) reads. A run nobody watches costs one dictionary lookup per commit that
changed it, and nothing at all when no stream is open.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from controlplane.dispatch.loop_calls import LoopCalls


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
        self.news.append(news)
        self.woken.set()


class RunWatches:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, list[Watch]] = {}

    def subscribe(self, run_id: str, loop: asyncio.AbstractEventLoop | None = None) -> Watch:
        """A subscription to `run_id`'s news, waited on in `loop` (default: the running
        one). The committer subscribes for a StartRun that waits, in the thread that will
        commit the run's next change, so that no change falls between start and subscription."""
        watch = Watch(run_id, loop or asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(run_id, []).append(watch)
        return watch

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

    def changed(self, news: dict[str, RunNews], calls: LoopCalls) -> None:
        """News of runs a commit changed (any thread): hand it to their streams, through
        `calls` (the stream's list and event belong to its loop: both change there)."""
        if not news:
            return
        with self._lock:
            targets = [(w, n) for run_id, n in news.items() for w in self._watches.get(run_id, ())]
        for watch, run_news in targets:
            calls.add(watch.loop, watch._receive, run_news)
