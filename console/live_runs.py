"""The runs a filter selects, followed live through WatchRuns (console/stream_follower.py).

Each stream (the first, and each after a break) starts with the matching runs as they are
(`initial`), which replace whatever was shown; then come the runs that changed. So a
reconnect needs no position: the new first message is the truth.
"""

from __future__ import annotations

from typing import Any

from surefoot.v1 import workflow_service_pb2 as ws
from textual.message import Message
from textual.widget import Widget

from console.run_client import RunClient
from console.stream_follower import StreamFollower


class RunsChanged(Message):
    """Runs as committed; `initial`: these are all the runs to show (up to the limit)."""

    def __init__(self, changes: list[ws.RunChange], initial: bool, total: int) -> None:
        super().__init__()
        self.changes = changes
        self.initial = initial
        self.total = total


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
        self.target.post_message(RunsChanged(changes, message.initial, message.total))
