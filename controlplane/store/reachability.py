"""Whether the database can be reached, as this process sees it, and how to wait for it.

When PostgreSQL goes away (a restart, a failover, a network cut), every part of the control
plane that touches it fails at once: the committer, the wake-up listener, each RPC. Without
care each of them retries as fast as it can and logs a traceback per try. Here instead:

- `is_unreachable` tells a lost database from a statement's own error (only the first is
  worth waiting out, and it is never worth a traceback);
- `Backoff` spaces the tries of a background loop (capped, jittered exponential), so that a
  loop probes at most about once a second however long the outage lasts, and resumes
  within the cap of the database's return;
- `DATABASE` is the process's one view of the state, which logs one line when the database
  is lost and one when it is back, whoever noticed first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from sqlalchemy import exc as sa_exc

log = logging.getLogger("surefoot.database")

# SQLSTATEs of a server that serves no statement right now: class 08 (connection exception),
# 57P01-57P03 (shutting down, crashed, starting up) and 53300 (no connection slot left).
_LOST_STATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (rather than refusing a statement).

    PostgreSQL only: an SQLite file has no outages, and its OperationalError also stands for
    the statement's own errors ("no such table").
    """
    if isinstance(exc, sa_exc.DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig: BaseException | None = exc.orig
    else:
        orig = exc
    if not isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = orig.sqlstate
    # A connection that fails or breaks has no SQLSTATE: the server never answered.
    return state is None or state.startswith(_LOST_STATES)


def reason(exc: BaseException) -> str:
    """One line saying why, without the driver's "(Background on this error ...)" tail."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return text or type(orig).__name__


class Backoff:
    """Delays between tries at an unreachable database: from `first`, doubling, at most `cap`,
    each drawn in [half, all] of its step, so that control planes sharing a database do not
    probe it in lockstep."""

    def __init__(
        self,
        first: float = 0.05,
        cap: float = 1.0,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self._first = first
        self._cap = cap
        self._uniform = uniform
        self._tries = 0

    def next(self) -> float:
        step = min(self._cap, self._first * 2 ** min(self._tries, 32))
        self._tries += 1
        return step * (0.5 + 0.5 * self._uniform())

    @property
    def tries(self) -> int:
        """Failed tries since the last success (0: the database is there)."""
        return self._tries

    def reset(self) -> None:
        self._tries = 0


class Reachability:
    """Up or down, changed by whoever notices; one log line per change (any thread)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._lost_at: float | None = None  # monotonic

    @property
    def down(self) -> bool:
        return self._lost_at is not None

    def lost(self, exc: BaseException) -> None:
        """An operation found the database unreachable."""
        with self._lock:
            if self._lost_at is not None:
                return
            self._lost_at = self._monotonic()
            since = datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="seconds")
            log.warning("database unreachable since %s: %s", since, reason(exc))

    def reached(self) -> None:
        """An operation went through: the database is there (cheap when it never left)."""
        if self._lost_at is None:
            return
        with self._lock:
            if self._lost_at is None:
                return
            away = self._monotonic() - self._lost_at
            self._lost_at = None
            log.warning("database back after %.1f s", away)


DATABASE = Reachability()
"""This process's database (a control plane serves one)."""
