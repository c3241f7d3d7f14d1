"""DecideApproval: an approver approves or rejects a run's pending approval."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from controlplane import errors
from controlplane.dispatch.operations.base import Operation
from controlplane.engine.events import ApprovalDecided
from controlplane.engine.machine import NotWaiting
from controlplane.store.schema import approvals

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction


def approval_run(approval_id: str) -> str:
    """The run an approval belongs to: its id is "<run id>:<node id>"."""
    return approval_id.split(":", 1)[0]


@dataclass
class DecideApproval(Operation):
    """Answers the approvals row (a mapping) as it will be after the commit."""

    namespace: str
    approval_id: str
    approve: bool
    comment: str
    principal: str
    # "group:<name>" for each group of the principal.
    groups: tuple[str, ...] = ()

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        return (approval_run(self.approval_id),)

    def apply(self, txn: Transaction) -> dict[str, Any]:
        batch = txn.batch
        row = batch.connection.execute(
            select(approvals).where(
                approvals.c.id == self.approval_id, approvals.c.namespace == self.namespace
            )
        ).first()
        if row is None or approval_run(self.approval_id) not in batch.runs:
            raise errors.NotFound(
                f"approval {self.approval_id} not found in namespace {self.namespace!r}"
            )
        pending = batch.waits.approval_updates.get(self.approval_id, {})
        status = pending.get("status", row.status)
        if status != "PENDING":
            by = pending.get("decided_by", row.decided_by) or "the system"
            raise errors.FailedPrecondition(
                f"approval {self.approval_id} is already {status} (by {by})"
            )
        approvers = json.loads(pending.get("approvers", row.approvers))
        if approvers and self.principal not in approvers and not set(self.groups) & set(approvers):
            raise errors.PermissionDenied(
                f"{self.principal} may not decide approval {self.approval_id} "
                f"(approvers: {', '.join(approvers)})"
            )
        event = ApprovalDecided(row.node_id, self.approve, self.principal, self.comment, txn.now)
        try:
            txn.transition(row.run_id, event)
        except NotWaiting as exc:
            raise errors.FailedPrecondition(str(exc)) from exc
        return dict(row._mapping) | batch.waits.approval_updates.get(self.approval_id, {})
