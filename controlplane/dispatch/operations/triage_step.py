"""TriageStep: an operator's retry or skip of a run's dead letter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.run_changes import ReadBack, change_run
from controlplane.engine.events import StepRetryRequested, StepSkipRequested
from controlplane.engine.state import RunState

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class TriageStep(Operation):
    """Answers the `CommittedRun` (its `RunState` alone without `read_back`)."""

    namespace: str
    run_id: str
    event: StepRetryRequested | StepSkipRequested
    # False for a caller that does not show the run (a redrive of thousands).
    read_back: bool = True

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return (self.run_id,)

    def apply(self, txn: Transaction) -> ReadBack | RunState:
        # The operator's clock is the commit's, like every other event of the batch.
        event = replace(self.event, time=txn.now)
        return change_run(txn, self.namespace, self.run_id, event, read_back=self.read_back)
