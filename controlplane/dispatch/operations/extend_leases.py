"""A worker's heartbeat: its leases run on, and progress details are kept with the attempt.

Bound to the lease like a result: a heartbeat extends only the tasks its stream holds; the
other task ids it names are refused (told to the stream and counted), never extended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controlplane.dispatch.operations.base import SessionChange
from controlplane.dispatch.operations.record_result import NOT_HELD
from controlplane.store.heartbeats import HeartbeatDetails

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction


@dataclass
class ExtendLeases(SessionChange):
    session_id: str
    task_ids: list[str]
    # The latest progress details of some of these tasks, by task id.
    details: dict[str, HeartbeatDetails] = field(default_factory=dict)

    def change(self, sessions: SessionRegistry, handout: Handout) -> None:
        session = sessions.by_id.get(self.session_id)
        held = [t for t in self.task_ids if session is not None and session.holds(t)]
        if session is not None and len(held) < len(self.task_ids):
            for task_id in self.task_ids:
                if session.holds(task_id):
                    continue
                cancelled = session.cancelled.get(task_id)
                why = f"the attempt was cancelled: {cancelled}" if cancelled else NOT_HELD
                session.refuse([task_id], why)
        self.task_ids = held
        keep = set(held)
        self.details = {t: d for t, d in self.details.items() if t in keep}

    def apply(self, txn: Transaction) -> None:
        if not self.task_ids:
            return
        # Extended together once the batch's expired leases are taken back: a lease that ran
        # out before its heartbeat was committed stays lost.
        txn.extend_leases(self.session_id, self.task_ids, self.details)
