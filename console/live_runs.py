"""The runs a filter selects, followed live through WatchRuns (console/stream_follower.py).

Each stream (the first, and each after a break) starts with the matching runs as they are
(`initial`), which replace whatever was shown; then come the runs that changed. So a
reconnect needs no position: the new first message is the truth. Every message also says
how many runs each status holds (the stream is asked to count them), so the Runs screen
asks for no count of its own.
"""

from __future__ import annotations

from typing import Any

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from textual.message import Message
from textual.widget import Widget

from console.run_client import RunClient
from console.stream_follower import StreamFollower


class RunsChanged(Message):
    """Runs as committed; `initial`: these are all the runs to show (up to the limit).
    `counts`: runs by status (`WAITING`) under the filter's other terms, as of this
    message; None when the control plane does not count them."""

    def __init__(
        self,
        changes: list[ws.RunChange],
        initial: bool,
        total: int,
        counts: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.changes = changes
        self.initial = initial
        self.total = total
        self.counts = counts


class RunsFollower(StreamFollower):
    def __init__(
        self, client: RunClient, run_filter: ws.RunFilter, target: Widget, initial_limit: int
    ) -> None:
        super().__init__(client, target, "watch-runs")
        self.run_filter = run_filter
        self.initial_limit = initial_limit

    def open(self) -> Any:
        return self.client.watch_runs(self.run_filter, self.initial_limit)

    def deliver(self, message: Any) -> None:
        changes = list(message.changes)
        counts = {
            run_pb2.RunStatus.Name(c.status).removeprefix("RUN_STATUS_"): int(c.count)
            for c in message.counts_by_status
        }
        self.target.post_message(
            RunsChanged(changes, message.initial, message.total, counts or None)
        )
