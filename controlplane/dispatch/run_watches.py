"""Who waits for news of a run in this process: the `WatchRun` streams.

A stream registers the run it follows and waits on an asyncio event; once a transaction that
changed runs has committed, the committer thread sets the events of the watched ones. A run
nobody watches costs one dictionary lookup per commit that changed it, and nothing when no
stream is open at all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable


class RunWatches:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # run id -> the events of the streams following it, with the loop each waits on.
        self._events: dict[str, dict[asyncio.Event, asyncio.AbstractEventLoop]] = {}

    def subscribe(self, run_id: str) -> asyncio.Event:
        """An event set whenever a commit changes `run_id` (call on the event loop)."""
        event = asyncio.Event()
        with self._lock:
            self._events.setdefault(run_id, {})[event] = asyncio.get_running_loop()
        return event

    def unsubscribe(self, run_id: str, event: asyncio.Event) -> None:
        with self._lock:
            watchers = self._events.get(run_id)
            if watchers is not None:
                watchers.pop(event, None)
                if not watchers:
                    del self._events[run_id]

    def changed(self, run_ids: Iterable[str]) -> None:
        """Runs a commit changed (any thread): wake their streams."""
        if not self._events:
            return
        with self._lock:
            woken = [w for run_id in run_ids for w in self._events.get(run_id, {}).items()]
        for event, loop in woken:
            # asyncio.Event is not thread-safe: it is set on the loop that waits on it.
            loop.call_soon_threadsafe(event.set)
