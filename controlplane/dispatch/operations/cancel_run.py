"""CancelRun: an operator stops a run, or abandons it (compensating what completed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.run_changes import ReadBack, change_run
from controlplane.engine.events import AbandonRequested, CancelRequested, RunEvent
from controlplane.engine.state import RunState

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class CancelRun(Operation):
    """Answers the `CommittedRun` (its `RunState` alone without `read_back`)."""

    namespace: str
    run_id: str
    reason: str
    principal: str
    # Abandon: compensate what completed instead of just stopping.
    compensate: bool = False
    # False for a caller that does not show the run: spares reading it back.
    read_back: bool = True
    # The durable operation (a bulk cancel or abandon) acting, recorded in the run's history.
    operation_id: str = ""

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return (self.run_id,)

    def apply(self, txn: Transaction) -> ReadBack | RunState:
        event: RunEvent
        if self.compensate:
            event = AbandonRequested(self.reason, self.principal, txn.now, self.operation_id)
        else:
            event = CancelRequested(self.reason, self.principal, txn.now, self.operation_id)
        return change_run(txn, self.namespace, self.run_id, event, read_back=self.read_back)
