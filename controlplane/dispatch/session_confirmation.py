"""How often a control plane confirms its worker streams in `worker_sessions`, and the task
that does it.

The interval follows the lease: a control plane that stopped confirming for a lease's length
has also stopped extending its workers' leases, which other control planes then take back;
its streams stop being listed as connected at about the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from controlplane.dispatch.committer import Committer
from controlplane.dispatch.operations.session_changes import ConfirmSessions

MIN_INTERVAL = 0.5
MAX_INTERVAL = 10.0
# Missing this many confirmations in a row makes a stream stale: one late batch (a busy
# committer, a slow database) must not drop a connected worker from the list.
MISSED_CONFIRMATIONS = 3
MIN_EXPIRY = 3.0


@dataclass(frozen=True)
class ConfirmationTiming:
    interval: float
    expires_after: float

    @classmethod
    def for_lease(cls, lease_seconds: float) -> ConfirmationTiming:
        interval = min(MAX_INTERVAL, max(MIN_INTERVAL, lease_seconds / 3))
        return cls(interval, max(lease_seconds, MISSED_CONFIRMATIONS * interval, MIN_EXPIRY))


class SessionConfirmer:
    """Posts a `ConfirmSessions` to the committer every interval (an asyncio task)."""

    def __init__(self, committer: Committer, lease_seconds: float) -> None:
        self._committer = committer
        self._lease = lease_seconds
        self.timing = ConfirmationTiming.for_lease(lease_seconds)
        self._task: asyncio.Task[None] | None = None
        self._last: ConfirmSessions | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="surefoot-session-confirmer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.timing.interval)
            if self._last is not None and not self._last.tried:
                # The committer has not got to the last one (the database is away: it keeps
                # what is posted for the first transaction after); one is enough.
                continue
            self._last = ConfirmSessions(self.timing.expires_after, self._lease)
            self._committer.post(self._last)
