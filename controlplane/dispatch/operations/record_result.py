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
from controlplane.engine.events import HANDED_BACK, AttemptCompleted, AttemptFailed, AttemptLost
from controlplane.engine.state import parse_task_id

if TYPE_CHECKING:
    from controlplane.dispatch.delivery import Handout
    from controlplane.dispatch.sessions import SessionRegistry
    from controlplane.dispatch.transaction import Transaction

log = logging.getLogger("surefoot.committer")

NOT_HELD = (
    "this stream does not hold the task's lease (no such task, its result was recorded "
    "already, or it went to another stream)"
)


def wrong_attempt(task_id: str, attempt: int | None) -> str:
    """Why a result naming `attempt` for `task_id` is refused ("" when it is not).

    A task id is one attempt's (`<run>:<node>:<attempt>`): a result must name the same
    attempt, so that a worker confused about which attempt it ran cannot report another.
    """
    parsed = parse_task_id(task_id)
    if parsed is None:
        return "malformed task id: expected <run id>:<node id>:<attempt>"
    if attempt is None:
        return ""
    if attempt <= 0:
        return f"attempt is missing: task {task_id} is attempt {parsed[2]}"
    if attempt != parsed[2]:
        return f"wrong attempt {attempt}: task {task_id} is attempt {parsed[2]}"
    return ""


@dataclass
class RecordResult(Operation):
    session_id: str
    worker_id: str
    task_id: str
    kind: str  # "complete" | "fail" | "hand_back"
    output: Any = None
    error: dict[str, Any] | None = None
    reason: str = ""
    # The attempt the worker names (Complete.attempt, ...): it must be the task id's.
    attempt: int | None = None
    # Decided once, before the first attempt at its transaction (a retried batch keeps the
    # decision: the lease was taken off the session the first time).
    held: bool | None = field(default=None, init=False, repr=False)
    _leased_at: float | None = field(default=None, init=False, repr=False)
    _credited: str = field(default="", init=False, repr=False)

    def change_sessions(self, sessions: SessionRegistry, handout: Handout) -> None:
        if self.held is not None:
            return
        session = sessions.by_id.get(self.session_id)
        self.held = False
        if session is None:
            return
        if not session.holds(self.task_id) and self.task_id not in session.cancelled:
            session.refuse([self.task_id], NOT_HELD)
            return
        wrong = wrong_attempt(self.task_id, self.attempt)
        if wrong:
            # The lease stays: the worker may still send the right attempt.
            session.refuse([self.task_id], wrong)
            return
        self.held = True
        if session.cancelled.pop(self.task_id, None) is not None:
            # Its slot was freed with the Cancel. Recorded like any late result (law 3: the
            # engine writes RESULT_IGNORED, the attempt being over), and acknowledged.
            self._credited = self.worker_id
            return
        # The worker is done with it: its window slot is free whatever the outcome.
        self._leased_at = session.outstanding.pop(self.task_id)
        if self.kind == "hand_back":
            # The next attempt goes to another worker if one has room for it.
            handout.avoid(self.task_id, session.id)
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
            why = f": {self.reason}" if self.reason else " by the worker"
            reason = HANDED_BACK + why
            event = AttemptLost(node_id, attempt, reason, now, worker_id, started, True)
        txn.attempt_ended(loaded, event, started)
        txn.transition(loaded.state.id, event)
