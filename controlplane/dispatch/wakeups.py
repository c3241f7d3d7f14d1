"""Cross-process wake-ups on PostgreSQL: LISTEN/NOTIFY on the `surefoot_tasks` channel.

A control plane that commits tasks it could not hand to one of its own workers notifies the
channel in the same transaction; every other control plane sharing the database wakes its
committer to claim them at once instead of at its next poll (law 9). The same connection
listens to the other channels a server is given (`Listener`s: step type registrations,
cancels for workers connected here), each notice's payload handed to its callback.

A lost connection is taken again after a capped, jittered backoff; the committer's polling
finds the work meanwhile, so the listener only makes it prompt.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping

import psycopg
from sqlalchemy import Connection, Engine, text

from controlplane.store.reachability import DATABASE, Backoff, is_unreachable, reason

log = logging.getLogger("surefoot.wakeups")

CHANNEL = "surefoot_tasks"
# Seconds before a connection attempt is given up (the server may be unroutable, not down).
CONNECT_TIMEOUT = 10


def notify_tasks_ready(connection: Connection, origin: str) -> None:
    """Queue a notification; PostgreSQL delivers it when the transaction commits."""
    connection.execute(
        text("SELECT pg_notify(:channel, :origin)"), {"channel": CHANNEL, "origin": origin}
    )


Listeners = Mapping[str, Callable[[str], None]]
"""Further channels to listen to: channel -> what to call with each notice's payload."""


class WakeupListener:
    """A thread holding one LISTEN connection; calls `wake` for other processes' notices,
    and each of `listeners` for notices on its channel (its own included)."""

    def __init__(
        self,
        engine: Engine,
        origin: str,
        wake: Callable[[], None],
        listeners: Listeners | None = None,
    ) -> None:
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._origin = origin
        self._wake = wake
        self._listeners = dict(listeners or {})
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="surefoot-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def _heard(self, channel: str, payload: str) -> None:
        if channel == CHANNEL:
            if payload != self._origin:
                self._wake()
            return
        listener = self._listeners.get(channel)
        if listener is None:
            return
        try:
            listener(payload)
        except Exception:
            # A notice is a hint (polling and refresh intervals find the same later): a
            # failing callback must not end the listening.
            log.exception("handling a notice on %s failed", channel)

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
                ) as connection:
                    for channel in (CHANNEL, *self._listeners):
                        connection.execute(f"LISTEN {channel}")
                    if backoff.tries:
                        backoff.reset()
                        DATABASE.reached()
                        # Notices sent while it was away are gone: look for their tasks now.
                        self._wake()
                    while not self._stopping.is_set():
                        for notice in connection.notifies(timeout=1.0):
                            self._heard(notice.channel, notice.payload)
            except psycopg.Error as exc:
                if is_unreachable(exc):
                    DATABASE.lost(exc)  # one line for the whole outage, whoever sees it first
                else:
                    log.warning("wake-up listener failed (%s); listening again", reason(exc))
                self._stopping.wait(backoff.next())


# Cancels for attempts whose lease a control plane took back while a stream of another one
# holds it (lease expiry, timeout_seconds, the run's end): that one tells its worker.
CANCELS_CHANNEL = "surefoot_cancels"
# PostgreSQL refuses payloads of 8000 bytes or more: larger sets go in several notices.
_PAYLOAD_BYTES = 7000


def notify_cancels(connection: Connection, origin: str, reasons: Mapping[str, str]) -> None:
    """Queue notices naming `reasons`' task ids (and why each is cancelled) for the control
    plane whose stream holds them; delivered when the transaction commits."""
    chunk: dict[str, str] = {}
    size = 0
    for task_id, why in reasons.items():
        why = why[:500]
        entry = len(task_id) + len(why.encode()) + 8
        if chunk and size + entry > _PAYLOAD_BYTES:
            _notify_chunk(connection, origin, chunk)
            chunk, size = {}, 0
        chunk[task_id] = why
        size += entry
    if chunk:
        _notify_chunk(connection, origin, chunk)


def _notify_chunk(connection: Connection, origin: str, chunk: dict[str, str]) -> None:
    payload = json.dumps({"origin": origin, "cancels": chunk}, separators=(",", ":"))
    connection.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CANCELS_CHANNEL, "payload": payload},
    )


def cancels_heard(origin: str, tell: Callable[[dict[str, str]], None]) -> Callable[[str], None]:
    """The listener of CANCELS_CHANNEL: calls `tell` with other control planes' cancels
    (task id -> reason); whether a stream here holds them is for `tell` to find out."""

    def heard(payload: str) -> None:
        notice = json.loads(payload)
        if notice.get("origin") == origin:
            return  # its own streams were told when it committed
        cancels = notice.get("cancels") or {}
        if cancels:
            tell({str(k): str(v) for k, v in cancels.items()})

    return heard
