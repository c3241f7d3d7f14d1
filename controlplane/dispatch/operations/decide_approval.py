"""DecideApproval: an approver approves or rejects a run's pending approval.

Refused, writing nothing, when the approval is not pending, the principal is not one of its
approvers, or the approver was shown something else (`shown_hash`). Refused with a history
event when the approval's separation of duties keeps the principal from deciding: the one
refusal an auditor must see.

The human review of an AI node is approved with the output the node should have had
(`output`): the engine says whether the approval takes one and whether it fits the node's
schema, before it changes the run, so a refused output is INVALID_ARGUMENT and writes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from controlplane import errors
from controlplane.audit.content import stored_content_hash
from controlplane.dispatch.operations.base import Operation
from controlplane.engine.events import ApprovalDecided, NewHistoryEvent, Transition
from controlplane.engine.machine import NotWaiting
from controlplane.engine.nodes import OutputRefused
from controlplane.store import audit_queries
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
    # The content hash of the approval as the approver saw it; "" when the client sent none.
    shown_hash: str = ""
    # The decision's output (the request's decoded Payload) and whether it had one: a JSON
    # null is an output too.
    output: Any = None
    has_output: bool = False

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
        content = stored_content_hash(row.id, row.title, row.shown)
        if self.shown_hash and self.shown_hash != content:
            raise errors.FailedPrecondition(
                f"approval {self.approval_id} is not what was shown (shown_hash "
                f"{self.shown_hash[:12]}..., content {content[:12]}...): show it again"
            )
        self._check_separation(txn, row.run_id, row.node_id)
        event = ApprovalDecided(
            row.node_id,
            self.approve,
            self.principal,
            self.comment,
            txn.now,
            content_hash=content,
            output=self.output,
            has_output=self.has_output,
        )
        try:
            txn.transition(row.run_id, event)
        except NotWaiting as exc:
            raise errors.FailedPrecondition(str(exc)) from exc
        except OutputRefused as refused:
            raise errors.InvalidArgument.field(refused.field, refused.message) from None
        return dict(row._mapping) | batch.waits.approval_updates.get(self.approval_id, {})

    def _check_separation(self, txn: Transaction, run_id: str, node_id: str) -> None:
        """PermissionDenied, recorded in the run's history, when the approval's separation
        of duties keeps this principal from deciding it."""
        batch = txn.batch
        state = batch.runs[run_id].state
        step = state.steps.get(node_id)
        if step is None or not step.data.get("separation_of_duties"):
            return
        acted = audit_queries.acting_principals(batch.connection, run_id)
        acted += [(r["type"], r["principal"]) for r in batch.queued_history(run_id)]
        reasons = sorted(
            {
                "started the run"
                if kind == audit_queries.STARTED
                else "decided an earlier approval"
                for kind, principal in acted
                if principal == self.principal
                and kind in (audit_queries.STARTED, audit_queries.DECIDED)
            }
        )
        if not reasons:
            return
        reason = f"{self.principal} {' and '.join(reasons)}"
        refused = NewHistoryEvent(
            "APPROVAL_DECISION_REFUSED",
            txn.now,
            node_id,
            step.attempt,
            principal=self.principal,
            data={
                "approval_id": self.approval_id,
                "decision": "approve" if self.approve else "reject",
                "reason": f"separation of duties: {reason}",
            },
        )
        # An audit record, not a change of the run: its state stays as it is.
        batch.record(state, Transition(events=[refused]))
        raise errors.PermissionDenied(
            f"separation of duties: {reason} and may not decide approval {self.approval_id}"
        )
