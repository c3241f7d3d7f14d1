"""A server stream followed from a thread and opened again whenever it breaks.

The stream is iterated in a thread (a blocking gRPC iterator, for the reason
console/client.py gives); what it brings is posted to a widget as Textual messages, which
Textual delivers on its own loop (post_message is thread-safe). A broken stream (control
plane restarted, network) is opened again after a short pause, from where the subclass says
(`open()`); an answer that will not change by retrying (NOT_FOUND, PERMISSION_DENIED,
UNIMPLEMENTED, ...) ends the follower and says why.
"""

from __future__ import annotations

import threading
from typing import Any

import grpc
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


class StreamState(Message):
    """The stream's state for the operator: "live", "reconnecting: ...", or a final error
    (`code` is then its gRPC status code)."""

    def __init__(self, text: str, final: bool = False, code: Any = None) -> None:
        super().__init__()
        self.text = text
        self.final = final
        self.code = code


class StreamFollower:
    """Follows a stream until `stop()`, posting to `target`; subclasses open the stream and
    turn each of its messages into what they post."""

    def __init__(self, client: RunClient, target: Widget, name: str) -> None:
        self.client = client
        self.target = target
        self._stopped = threading.Event()
        self._call: Any = None
        self._state = ""
        self._thread = threading.Thread(target=self._follow, name=name, daemon=True)

    def open(self) -> Any:
        """The stream, opened from where the last one left off."""
        raise NotImplementedError

    def deliver(self, message: Any) -> None:
        """One message of the stream, in the stream's thread."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._call is not None:
            self._call.cancel()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _follow(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            try:
                self._call = self.open()
                if self._stopped.is_set():
                    self._call.cancel()
                    return
                for message in self._call:
                    failures = 0
                    self.deliver(message)
                    self.say("live")
            except grpc.RpcError as exc:
                if self._stopped.is_set():
                    return
                error = self.client.translate(exc)
                code = exc.code() if hasattr(exc, "code") else None
                if code in FINAL_CODES:
                    self.say(str(error), final=True, code=code)
                    return
                self.say(f"reconnecting: {error}")
            except ValueError:  # the channel was closed: the screen went away
                return
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            # Also returns at once when stopped.
            self._stopped.wait(delay)

    def say(self, state: str, final: bool = False, code: Any = None) -> None:
        # Said once per change, not once per message.
        if state != self._state or final:
            self._state = state
            self.target.post_message(StreamState(state, final, code))
