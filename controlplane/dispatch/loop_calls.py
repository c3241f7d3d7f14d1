"""Calls the committer thread makes on event loops, gathered: one wake-up per loop per batch.

Each `call_soon_threadsafe` writes to the loop's self-pipe and takes its lock; a batch that
answers forty callers and messages their workers made as many, each a system call and a
chance for the two threads to trade the GIL. Gathered, a batch costs each loop one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("surefoot.committer")

Call = tuple[Callable[..., Any], tuple[Any, ...]]


class LoopCalls:
    def __init__(self) -> None:
        self._calls: dict[asyncio.AbstractEventLoop, list[Call]] = {}

    def add(
        self, loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any
    ) -> None:
        self._calls.setdefault(loop, []).append((function, args))

    def flush(self) -> None:
        """Schedule what was gathered, in the order it was added on each loop (any thread)."""
        calls, self._calls = self._calls, {}
        for loop, gathered in calls.items():
            # A closed loop has nobody left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_run_all, gathered)


def _run_all(calls: list[Call]) -> None:
    for function, args in calls:
        try:
            function(*args)
        except Exception:
            # One caller's trouble must not keep the others of the batch unanswered.
            log.exception("answering after a commit failed")
