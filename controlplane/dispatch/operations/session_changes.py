"""Changes to the worker streams connected to this process, as the committer sees them.

Each change is also written to the stream's `worker_sessions` row, in the same transaction,
so that every control plane of the database can list every connected worker (law 9);
`ConfirmSessions` keeps the rows of the streams still open from expiring.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controlplane.dispatch import claims
from controlplane.dispatch.operations.base import Operation, SessionChange
from controlplane.dispatch.sessions import SessionRegistry, WorkerSession
from controlplane.store import worker_sessions
from controlplane.store.codec import to_datetime, to_epoch

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.transaction import Transaction

# Who holds a stream, as ListWorkers shows it: where to look for its logs.
CONTROL_PLANE = f"{socket.gethostname()}:{os.getpid()}"
# A new row's expiry, until the first `ConfirmSessions` of its control plane (at most one
# confirmation interval later) sets the one that control plane keeps.
FIRST_EXPIRY_SECONDS = 30.0


@dataclass
class OpenSession(SessionChange):
    """A stream's Hello was accepted; it answers how many leases the stream took over."""

    session: WorkerSession
    # Earlier sessions of the same worker (Hello.resume_session_ids): their leases in the
    # session's namespace move to it, so that results resent on this stream are accepted.
    resume: tuple[str, ...] = ()

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        sessions.add(self.session)
        handout.maybe_ready = True

    def apply(self, txn: Transaction) -> int:
        session = self.session
        connection = txn.connection
        # The earlier streams this one takes over are gone (the SDK resumes only after its
        # stream ended): their rows go now rather than when their control plane's expiry
        # passes, which for a killed control plane would list the worker twice meanwhile.
        # Its own id too: a `ConfirmSessions` earlier in the batch may have written it.
        worker_sessions.delete_sessions(connection, (*self.resume, session.id), session.namespace)
        worker_sessions.insert_session(
            connection,
            session,
            CONTROL_PLANE,
            to_datetime(txn.now),
            to_datetime(txn.now + FIRST_EXPIRY_SECONDS),
        )
        if not self.resume:
            return 0
        moved = claims.take_over_leases(
            txn.connection, session.namespace, list(self.resume), session.id
        )
        # In memory as well, idempotently (a retried batch moves the same rows again): the
        # earlier session, if it is still open here, no longer holds them.
        for task_id, leased_at, worker_id in moved:
            for earlier in self.resume:
                other = txn.sessions.by_id.get(earlier)
                if other is not None and other is not session:
                    other.outstanding.pop(task_id, None)
                    other.resumed.pop(task_id, None)
            session.outstanding[task_id] = to_epoch(leased_at) if leased_at else txn.now
            session.resumed[task_id] = worker_id or session.worker_id
        return len(moved)


@dataclass
class GrantCredit(SessionChange):
    """A Credit: the stream's window is now `n` (it replaces the window, it does not add)."""

    session_id: str
    n: int

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.by_id.get(self.session_id)
        if session is not None:
            session.window = self.n
            handout.maybe_ready = True

    def apply(self, txn: Transaction) -> None:
        # The window as a whole, not the increment: a retried transaction writes it again.
        session = txn.sessions.by_id.get(self.session_id)
        if session is not None:
            worker_sessions.set_credit(txn.connection, self.session_id, session.window)


@dataclass
class StartDraining(SessionChange):
    """The stream takes no new task: its worker said Draining, or, with `drain`, this control
    plane is stopping and tells the worker so with a Drain of that reason."""

    session_id: str
    drain: str | None = None

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.by_id.get(self.session_id)
        if session is not None:
            session.draining = True

    def apply(self, txn: Transaction) -> None:
        worker_sessions.set_draining(txn.connection, self.session_id)
        if self.drain is not None:
            # Sent with this batch's deliveries: the window closed before the batch's claims,
            # and every task of an earlier batch was queued on the stream before it.
            txn.out.drains[self.session_id] = self.drain


@dataclass
class CloseSession(SessionChange):
    session_id: str
    reason: str
    # False when this control plane is shutting down: the worker will reconnect to another
    # one and report its in-flight tasks there, so their leases are left to run.
    release_leases: bool = True

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.remove(self.session_id)
        if session is not None:
            session.closed = True

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        if not self.release_leases:
            return ()
        # Released after the batch's other operations, like every lease the batch takes back.
        lost = claims.session_leases(txn.connection, [self.session_id])
        txn.lose_session_leases(self.session_id, [task_id for task_id, _ in lost])
        return [run_id for _, run_id in lost]

    def apply(self, txn: Transaction) -> None:
        worker_sessions.delete_sessions(txn.connection, [self.session_id])


@dataclass
class ConfirmSessions(Operation):
    """The streams of this process are still open: their rows' expiry moves forward.

    Posted every `interval` seconds (dispatch/session_confirmation.py), not per heartbeat:
    one UPDATE per control plane per interval whatever the number of workers. A control
    plane that stops posting it (killed, crashed, cut off from the database) leaves rows
    that expire `expires_after` seconds after its last confirmation, and are no longer
    listed as connected.
    """

    expires_after: float
    lease_seconds: float
    # Set by the committer thread once a transaction applied it (read by the poster, which
    # posts no other meanwhile).
    tried: bool = field(default=False, init=False)

    def apply(self, txn: Transaction) -> int:
        """How many rows were missing and written again."""
        self.tried = True
        live = [s for s in txn.sessions.by_id.values() if not s.closed]
        return worker_sessions.confirm_sessions(
            txn.connection,
            live,
            CONTROL_PLANE,
            to_datetime(txn.now),
            to_datetime(txn.now + self.expires_after),
            self.lease_seconds,
        )


@dataclass
class LookForTasks(SessionChange):
    """Another control plane committed tasks this one may hand out."""

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        handout.maybe_ready = True
