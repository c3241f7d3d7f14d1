"""How a worker comes back after losing its control plane: when it tries, and what it says.

A restarted control plane listens again within seconds, and every second a worker then waits
is a second its steps wait too. So the delay between two attempts starts at 0.1 s and doubles
up to ``max_reconnect_delay`` (1 s by default), drawn with jitter so that a fleet of workers
does not come back in lockstep, and starts over once a stream is welcomed. The channel's own
connection backoff is capped to match (``_channel.py``): otherwise gRPC would refuse the
attempts for up to two minutes after a long outage, whatever the worker's loop does.

Trying every second must not log every second: an outage is one line when it begins, one
every 30 s while it lasts, and the worker's "reconnected" line when it ends.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable

INITIAL_RECONNECT_DELAY = 0.1
DEFAULT_MAX_RECONNECT_DELAY = 1.0
# gRPC itself waits at least 0.1 s between two connection attempts; a worker that tries less
# often than every five minutes leaves its steps waiting long after the outage is over.
MIN_MAX_RECONNECT_DELAY = 0.1
MAX_MAX_RECONNECT_DELAY = 300.0
# How often a worker that still cannot reach its control plane says so.
STILL_UNREACHABLE_EVERY = 30.0


def check_max_reconnect_delay(value: float) -> float:
    """``value`` if it is a usable ``max_reconnect_delay``.

    Raises:
        ValueError: If it is not a number of seconds within the bounds.
    """
    if not (
        isinstance(value, int | float)
        and math.isfinite(value)
        and MIN_MAX_RECONNECT_DELAY <= value <= MAX_MAX_RECONNECT_DELAY
    ):
        raise ValueError(
            f"max_reconnect_delay must be between {MIN_MAX_RECONNECT_DELAY:g} and "
            f"{MAX_MAX_RECONNECT_DELAY:g} seconds, got {value!r}"
        )
    return float(value)


class ReconnectBackoff:
    """The waits between attempts: 0.1 s doubling up to ``maximum``, each drawn from its
    upper half, so that the wait never exceeds ``maximum``.

    Args:
        maximum: The longest wait, in seconds.
        uniform: Draws the jitter (``random.uniform``); injected by the tests.
    """

    def __init__(
        self, maximum: float, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        self._maximum = maximum
        self._uniform = uniform
        self._base = min(INITIAL_RECONNECT_DELAY, maximum)

    def next_delay(self) -> float:
        """The wait before the next attempt; the one after it will be twice as long."""
        wait = self._base * self._uniform(0.5, 1.0)
        self._base = min(self._base * 2, self._maximum)
        return wait

    def reset(self) -> None:
        """A stream was welcomed: the next outage starts with short waits again."""
        self._base = min(INITIAL_RECONNECT_DELAY, self._maximum)


class OutageLog:
    """What a worker logs about losing its control plane: once when an outage begins, then
    every ``every`` seconds while it lasts, never once per attempt.

    Args:
        logger: Where the lines go.
        address: The control plane's address, named in every line.
        max_delay: The longest wait between attempts, said when an outage begins.
        clock: Seconds, monotonic (``time.monotonic``); injected by the tests.
        every: Seconds between two "still cannot reach" lines.
    """

    def __init__(
        self,
        logger: logging.Logger,
        address: str,
        max_delay: float,
        clock: Callable[[], float] = time.monotonic,
        every: float = STILL_UNREACHABLE_EVERY,
    ) -> None:
        self._logger = logger
        self._address = address
        self._max_delay = max_delay
        self._clock = clock
        self._every = every
        self._began: float | None = None
        self._last_line = 0.0

    def stream_ended(
        self, *, welcomed: bool, draining: bool, problem: str | None, wait: float
    ) -> None:
        """A stream ended (or never started) and the worker tries again in ``wait`` seconds.

        Args:
            welcomed: Whether the control plane had welcomed that stream: it was up until
                now, so a new outage begins (and the previous one, if any, ended).
            draining: Whether the control plane had asked the worker to reconnect.
            problem: The stream's error as ``CODE: details``; None if it ended cleanly.
            wait: Seconds until the next attempt.
        """
        now = self._clock()
        if welcomed or self._began is None:
            self._began = self._last_line = now
            self._first_line(welcomed, draining, problem, wait)
        elif now - self._last_line >= self._every:
            self._last_line = now
            self._logger.warning(
                "still cannot reach the control plane at %s after %.0fs (%s)",
                self._address,
                now - self._began,
                problem or "the stream ended before the control plane welcomed it",
            )

    def _first_line(self, welcomed: bool, draining: bool, problem: str | None, wait: float) -> None:
        if draining and problem is None:
            self._logger.info("reconnecting to %s as the control plane asked", self._address)
        elif problem is None:
            self._logger.warning(
                "control plane at %s ended the stream; reconnecting in %.1fs",
                self._address,
                wait,
            )
        elif welcomed:
            self._logger.warning(
                "lost the control plane at %s (%s); reconnecting in %.1fs",
                self._address,
                problem,
                wait,
            )
        else:
            self._logger.warning(
                "cannot reach the control plane at %s (%s); retrying at least every %gs",
                self._address,
                problem,
                self._max_delay,
            )
