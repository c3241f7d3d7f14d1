"""RedriveItem: one dead letter of a redrive retried, and its item marked so, in one commit.

The item's guarded update and the run's retry are in the same transaction (law 1): a crash
before the commit leaves both undone (the item is retried later), after it both done, so a
dead letter is never retried twice by its operation, whatever restarts in between. When its
turn comes the dead letter may no longer be the one selected (someone retried, skipped or
cancelled it, or it was retried and gave up again since): the item then records why and the
run is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import exists, select

from controlplane.dispatch.operations.base import Operation
from controlplane.engine import machine
from controlplane.engine.events import StepRetryRequested
from controlplane.engine.state import NEEDS_ATTENTION
from controlplane.engine.triage import NotDeadLettered
from controlplane.store import operation_queries as oq
from controlplane.store.codec import to_datetime
from controlplane.store.schema import operation_items, operations

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


@dataclass
class RedriveItem(Operation):
    """Answers True if the step was retried, False if the item found nothing to retry."""

    operation_id: str
    namespace: str
    run_id: str
    node_id: str
    # The dead letter's attempts when the operation selected it.
    attempts: int
    principal: str
    comment: str

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return (self.run_id,)

    def apply(self, txn: Transaction) -> bool:
        item = (
            operation_items.c.operation_id == self.operation_id,
            operation_items.c.run_id == self.run_id,
        )
        # Taken first, under the item's row lock: another control plane (or this one after
        # a lost claim) that reaches the same item finds it taken and does nothing.
        still_running = exists(
            select(operations.c.id).where(
                operations.c.id == self.operation_id, operations.c.state == oq.RUNNING
            )
        )
        taken = txn.connection.execute(
            operation_items.update()
            .where(*item, operation_items.c.state == oq.PENDING, still_running)
            .values(state=oq.RETRIED, retried_at=to_datetime(txn.now), claimed_until=None)
        )
        if taken.rowcount == 0:
            return False
        reason = self._not_the_selected_dead_letter(txn)
        if reason is None:
            event = StepRetryRequested(
                self.node_id,
                self.principal,
                self.comment,
                txn.now,
                operation_id=self.operation_id,
            )
            try:
                txn.transition(self.run_id, event)
            except (machine.RunClosed, NotDeadLettered) as exc:
                reason = str(exc)
        if reason is None:
            return True
        txn.connection.execute(
            operation_items.update()
            .where(*item)
            .values(
                state=oq.NOT_RETRIED,
                retried_at=None,
                settled_at=to_datetime(txn.now),
                reason=reason,
            )
        )
        return False

    def _not_the_selected_dead_letter(self, txn: Transaction) -> str | None:
        loaded = txn.batch.runs.get(self.run_id)
        if loaded is None or loaded.state.namespace != self.namespace:
            return "the run no longer exists"
        state = loaded.state
        if state.status != NEEDS_ATTENTION or state.attention is None:
            return f"the run is {state.status}: the dead letter was decided meanwhile"
        step = state.steps.get(state.attention)
        if step is None or step.node_id != self.node_id:
            return f"the run's dead letter is now {state.attention!r}, not {self.node_id!r}"
        if step.attempt != self.attempts:
            return (
                f"dead-lettered again since it was selected (after attempt {step.attempt}, "
                f"not {self.attempts}): a new failure, not the one selected"
            )
        return None
