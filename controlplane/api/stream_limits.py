"""What one worker stream may declare and send: limits with a refusal that names them.

A worker is a client like any other: it must not be able to fill the database with a Hello
(step types), nor hold a control plane busy with a flood of messages. The numbers are server
options (`surefoot server --worker-...`); the defaults leave room for a busy worker (the bench
sends far fewer messages: results travel several to a message).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from controlplane import errors

# The largest message either side accepts (grpc.max_receive/send_message_length).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_STEP_TYPES = 500
DEFAULT_MESSAGES_PER_SECOND = 2_000.0
DEFAULT_MESSAGE_BURST = 4_000
# Earlier sessions a Hello may name to take their leases over: a worker names the last one
# it was welcomed on; a few more cover reconnects that failed half-way.
MAX_RESUMED_SESSIONS = 16
MAX_SESSION_ID = 64


@dataclass(frozen=True)
class StreamLimits:
    max_step_types: int = DEFAULT_MAX_STEP_TYPES
    messages_per_second: float = DEFAULT_MESSAGES_PER_SECOND
    message_burst: int = DEFAULT_MESSAGE_BURST

    def check_hello(self, step_types: int, resume_session_ids: list[str]) -> None:
        """Refuses a Hello past a limit, before anything of it is written."""
        if step_types > self.max_step_types:
            raise errors.ResourceExhausted(
                f"hello.step_types: {step_types} step types in one Hello, more than the "
                f"limit of {self.max_step_types} (server option --worker-max-step-types)"
            )
        if len(resume_session_ids) > MAX_RESUMED_SESSIONS:
            raise errors.InvalidArgument.field(
                "hello.resume_session_ids",
                f"names {len(resume_session_ids)} sessions, more than {MAX_RESUMED_SESSIONS}",
            )
        for index, session_id in enumerate(resume_session_ids):
            if not session_id or len(session_id) > MAX_SESSION_ID:
                raise errors.InvalidArgument.field(
                    f"hello.resume_session_ids[{index}]",
                    f"must be a session id of 1 to {MAX_SESSION_ID} characters",
                )

    def bucket(self) -> TokenBucket:
        return TokenBucket(self.messages_per_second, self.message_burst)


class TokenBucket:
    """`rate` messages per second on average, `burst` at once; one bucket per stream."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self) -> None:
        """Spends one token; ResourceExhausted, naming the limit, when there is none."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            raise errors.ResourceExhausted(
                f"more than {self.rate:g} messages per second (burst {self.burst}) on one "
                "worker stream (server options --worker-messages-per-second, "
                "--worker-message-burst)"
            )
        self._tokens -= 1
