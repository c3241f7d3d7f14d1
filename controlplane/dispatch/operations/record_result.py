"""RecordResult: a worker's Complete, Fail or HandBack for one attempt.

Bound to the lease: only the stream that holds the task (it was sent there, or taken over
with Hello.resume_session_ids) may report it. Any other result is refused before the
transaction: no run is locked, nothing is written, no worker is credited, and the stream
that sent it is told (`Refused`) and has it counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controlplane.dispatch.operations.base import Operation
from controlplane.engine.events import AttemptCompleted, AttemptFailed, AttemptLost
from controlplane.engine.state import parse_task_id

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction

log = logging.getLogger("surefoot.committer")

NOT_HELD = "this stream does not hold the task's lease"


@dataclass
class RecordResult(Operation):
    session_id: str
    worker_id: str
    task_id: str
    kind: str  # "complete" | "fail" | "hand_back"
    output: Any = None
    error: dict[str, Any] | None = None
    reason: str = ""
    # Decided once, before the first attempt at its transaction (a retried batch keeps the
    # decision: the lease was taken off the session the first time).
    held: bool | None = field(default=None, init=False, repr=False)
    _leased_at: float | None = field(default=None, init=False, repr=False)
    _credited: str = field(default="", init=False, repr=False)

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        if self.held is not None:
            return
        session = sessions.by_id.get(self.session_id)
        self.held = session is not None and session.holds(self.task_id)
        if session is None:
            return
        if not self.held:
            session.refuse([self.task_id], NOT_HELD)
            return
        # The worker is done with it: its window slot is free whatever the outcome.
        self._leased_at = session.outstanding.pop(self.task_id)
        self._credited = session.resumed.pop(self.task_id, self.worker_id)

    def run_ids(self, txn: Transaction) -> Iterable[str]:
        parsed = parse_task_id(self.task_id) if self.held else None
        return (parsed[0],) if parsed else ()

    def apply(self, txn: Transaction) -> None:
        if not self.held:
            return
        self._record(txn)
        txn.acknowledge(self.session_id, self.task_id)

    def _record(self, txn: Transaction) -> None:
        parsed = parse_task_id(self.task_id)
        loaded = txn.batch.runs.get(parsed[0]) if parsed else None
        if parsed is None or loaded is None:
            log.info("result for unknown task %s ignored", self.task_id)
            return
        _, node_id, attempt = parsed
        worker_id, started, now = self._credited, self._leased_at, txn.now
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
