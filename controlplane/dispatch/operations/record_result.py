"""RecordResult: a worker's Complete, Fail or HandBack for one attempt."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controlplane.dispatch.operations.base import Operation
from controlplane.engine.events import AttemptCompleted, AttemptFailed, AttemptLost
from controlplane.engine.state import parse_task_id
from controlplane.store.codec import to_epoch

if TYPE_CHECKING:
    from controlplane.dispatch.transaction import Transaction

log = logging.getLogger("surefoot.committer")


@dataclass
class RecordResult(Operation):
    session_id: str
    worker_id: str
    task_id: str
    kind: str  # "complete" | "fail" | "hand_back"
    output: Any = None
    error: dict[str, Any] | None = None
    reason: str = ""

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        session = txn.sessions.by_id.get(self.session_id)
        if session is None or self.task_id not in session.outstanding:
            # Sent on an earlier stream (or lost track of): its row says who ran it and when.
            txn.want_task_row(self.task_id)
        parsed = parse_task_id(self.task_id)
        return (parsed[0],) if parsed else ()

    def apply(self, txn: Transaction) -> None:
        self._record(txn)
        txn.acknowledge(self.session_id, self.task_id)

    def _record(self, txn: Transaction) -> None:
        session = txn.sessions.by_id.get(self.session_id)
        # The worker is done with it: its window slot is free whatever the outcome.
        leased_at = session.outstanding.pop(self.task_id, None) if session is not None else None
        parsed = parse_task_id(self.task_id)
        loaded = txn.batch.runs.get(parsed[0]) if parsed else None
        if parsed is None or loaded is None:
            log.info("result for unknown task %s ignored", self.task_id)
            return
        _, node_id, attempt = parsed
        row = txn.task_rows.get(self.task_id)
        worker_id = row.worker_id if row is not None and row.worker_id else self.worker_id
        started = to_epoch(row.leased_at) if row is not None and row.leased_at else leased_at
        now = txn.now
        event: AttemptCompleted | AttemptFailed | AttemptLost
        if self.kind == "complete":
            event = AttemptCompleted(node_id, attempt, self.output, now, worker_id, started)
        elif self.kind == "fail":
            error = self.error or {"type": "Error", "message": "", "retryable": True}
            event = AttemptFailed(node_id, attempt, error, now, worker_id, started)
        else:
            reason = f"handed back: {self.reason}" if self.reason else "handed back by the worker"
            event = AttemptLost(node_id, attempt, reason, now, worker_id, started)
        txn.attempt_ended(loaded, event, started)
        txn.transition(loaded.state.id, event)
