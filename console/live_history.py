"""A run's history followed live through WatchRun, resumed after the last event received
whenever the stream breaks, so no event is lost or repeated (console/stream_follower.py)."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import run_pb2
from textual.message import Message
from textual.widget import Widget

from console.run_client import RunClient
from console.stream_follower import StreamFollower


class HistoryArrived(Message):
    """Events that follow the last ones delivered, and the run's status after them
    (RUN_STATUS_UNSPECIFIED on a page that is not the last of a catch-up)."""

    def __init__(self, events: list[run_pb2.HistoryEvent], status: int) -> None:
        super().__init__()
        self.events = events
        self.status = status


class HistoryFollower(StreamFollower):
    """Follows `run_id` from `after_seq` until `stop()`, posting to `target`."""

    def __init__(self, client: RunClient, run_id: str, target: Widget, after_seq: int = 0) -> None:
        super().__init__(client, target, f"watch-{run_id}")
        self.run_id = run_id
        self.last_seq = after_seq

    def open(self) -> Any:
        return self.client.watch_run(self.run_id, self.last_seq)

    def deliver(self, message: Any) -> None:
        fresh = [event for event in message.events if event.seq > self.last_seq]
        if fresh:
            self.last_seq = fresh[-1].seq
        if fresh or message.status:
            self.target.post_message(HistoryArrived(fresh, message.status))
