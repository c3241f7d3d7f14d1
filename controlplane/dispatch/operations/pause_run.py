"""PauseRun and ResumeRun: an operator holds a run's hand-out of tasks, then releases it.

The engine records the pause (or resume) with its principal; the run's task rows follow in
the same transaction: unleased ones are held ('paused') or made ready again
(dispatch/claims.py). Leased attempts are left to finish; their successors are written
held by the hand-out while the run is paused (dispatch/delivery.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane import errors
from controlplane.dispatch import claims
from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.run_changes import ReadBack, change_run
from controlplane.dispatch.wakeups import notify_tasks_ready
from controlplane.engine.events import PauseRequested, ResumeRequested, RunEvent
from controlplane.engine.pausing import PauseRefused
from controlplane.store.database import is_postgres

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction

# Names the resuming transaction in its NOTIFY: every control plane, this one included,
# looks for the released tasks (this one also claims them in the same transaction).
RESUME_ORIGIN = "resume"


@dataclass
class PauseRun(Operation):
    """Pauses (or, with `resume`, resumes) a run; answers the `CommittedRun`."""

    namespace: str
    run_id: str
    principal: str
    reason: str = ""
    resume: bool = False
    # The durable operation (a bulk pause or resume) acting, recorded in the run's history.
    operation_id: str = ""

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        if self.resume:
            # The released tasks are claimed in this very transaction by sessions with credit.
            handout.maybe_ready = True

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return (self.run_id,)

    def apply(self, txn: Transaction) -> ReadBack:
        event: RunEvent
        if self.resume:
            event = ResumeRequested(self.principal, txn.now, self.reason, self.operation_id)
        else:
            event = PauseRequested(self.reason, self.principal, txn.now, self.operation_id)
        try:
            back = change_run(txn, self.namespace, self.run_id, event, read_back=True)
        except PauseRefused as exc:
            raise errors.FailedPrecondition(str(exc)) from exc
        assert isinstance(back, ReadBack)
        connection = txn.connection
        if not self.resume:
            claims.hold_run_tasks(connection, self.run_id)
        elif claims.release_run_tasks(connection, self.run_id) and is_postgres(connection.engine):
            notify_tasks_ready(connection, RESUME_ORIGIN)
        return back
