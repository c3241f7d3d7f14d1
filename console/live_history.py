"""A run's history followed live through WatchRun, from a thread, resumed after the last
event received whenever the stream breaks.

The stream is iterated in a thread (a blocking gRPC iterator, for the reason
console/client.py gives) and each message is posted to a widget as a `HistoryArrived`
message, which Textual delivers on its own loop (post_message is thread-safe). A broken
stream (control plane restarted, network) is opened again after a short pause with
`after_seq` = the last seq received, so no event is lost or repeated; an answer that will
not change by retrying (NOT_FOUND, PERMISSION_DENIED, ...) ends the follower and says why.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
from surefoot.v1 import run_pb2
from textual.message import Message
from textual.widget import Widget

from console.run_client import RunClient

# Pauses between two attempts to open the stream again: quick at first, then every 3 s.
RECONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0, 3.0)
# Opening the stream again will not change these answers.
FINAL_CODES = {
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
}


class HistoryArrived(Message):
    """Events that follow the last ones delivered, and the run's status after them
    (RUN_STATUS_UNSPECIFIED on a page that is not the last of a catch-up)."""

    def __init__(self, events: list[run_pb2.HistoryEvent], status: int) -> None:
        super().__init__()
        self.events = events
        self.status = status


class StreamState(Message):
    """The stream's state for the operator: "live", "reconnecting: ...", or a final error."""

    def __init__(self, text: str, final: bool = False) -> None:
        super().__init__()
        self.text = text
        self.final = final


class HistoryFollower:
    """Follows `run_id` from `after_seq` until `stop()`, posting to `target`."""

    def __init__(self, client: RunClient, run_id: str, target: Widget, after_seq: int = 0) -> None:
        self.client = client
        self.run_id = run_id
        self.target = target
        self.last_seq = after_seq
        self._stopped = threading.Event()
        self._call: Any = None
        self._state = ""
        self._thread = threading.Thread(target=self._follow, name=f"watch-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()

    def _follow(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                self._call = self.client.watch_run(self.run_id, self.last_seq)
                if self._stopped.is_set():
                    self._call.cancel()
                    return
                for message in self._call:
                    failures = 0
                    self._deliver(message.events, message.status)
            except grpc.RpcError as exc:
                if self._stopped.is_set():
                    return
                error = self.client.translate(exc)
                code = exc.code() if hasattr(exc, "code") else None
                if code in FINAL_CODES:
                    self._say(str(error), final=True)
                    return
                self._say(f"reconnecting: {error}")
            except ValueError:  # the channel was closed: the screen went away
                return
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            # Also returns at once when stopped.
            self._stopped.wait(delay)

    def _deliver(self, events: Any, status: int) -> None:
        fresh = [event for event in events if event.seq > self.last_seq]
        if fresh:
            self.last_seq = fresh[-1].seq
        if fresh or status:
            self.target.post_message(HistoryArrived(fresh, status))
        self._say("live")

    def _say(self, state: str, final: bool = False) -> None:
        # Said once per change, not once per message.
        if state != self._state or final:
            self._state = state
            self.target.post_message(StreamState(state, final))
