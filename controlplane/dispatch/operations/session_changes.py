"""Changes to the worker streams connected to this process, as the committer sees them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.dispatch import claims
from controlplane.dispatch.operations.base import SessionChange
from controlplane.dispatch.sessions import SessionRegistry, WorkerSession
from controlplane.store.codec import to_epoch

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.transaction import Transaction


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
        if not self.resume:
            return 0
        session = self.session
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
    session_id: str
    n: int

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.by_id.get(self.session_id)
        if session is not None:
            session.window += self.n
            handout.maybe_ready = True


@dataclass
class StartDraining(SessionChange):
    session_id: str

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.by_id.get(self.session_id)
        if session is not None:
            session.draining = True


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


@dataclass
class LookForTasks(SessionChange):
    """Another control plane committed tasks this one may hand out."""

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        handout.maybe_ready = True
