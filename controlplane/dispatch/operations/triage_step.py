"""TriageStep: an operator's retry or skip of a run's dead letter; RetryDeadLetters: many."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from controlplane import errors
from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.run_changes import ReadBack, change_run
from controlplane.engine.events import StepRetryRequested, StepSkipRequested
from controlplane.engine.state import RunState
from controlplane.store import dead_letter_queries as dlq
from controlplane.store.dead_letter_queries import DeadLetterFilter

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


@dataclass(frozen=True)
class Redriven:
    """What `RetryDeadLetters` did: how many it retried, how many still match after it."""

    retried: int
    remaining: int


@dataclass
class RetryDeadLetters(Operation):
    """Retries many runs' dead letters in one transaction (RedriveDeadLetters).

    A run someone decided on since it was selected (retried, skipped, cancelled) is passed
    over, not counted. `remaining` counts what matches `where` once this transaction's
    retries are taken off.
    """

    namespace: str
    # (run id, node id) of the dead letters selected, read before the transaction.
    selected: list[tuple[str, str]]
    principal: str
    comment: str
    where: DeadLetterFilter

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return [run_id for run_id, _ in self.selected]

    def apply(self, txn: Transaction) -> Redriven:
        retried = 0
        for run_id, node_id in self.selected:
            event = StepRetryRequested(node_id, self.principal, self.comment, txn.now)
            try:
                change_run(txn, self.namespace, run_id, event, read_back=False)
            except (errors.NotFound, errors.FailedPrecondition):
                continue
            retried += 1
        # Read before the batch's writes are flushed: what matched, less what this retried.
        matching = dlq.count_matching(txn.connection, self.namespace, self.where)
        return Redriven(retried, max(0, matching - retried))
