"""What happens to a run (engine input) and what the engine decides (its output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AttemptCompleted:
    node_id: str
    attempt: int
    output: Any
    time: float
    worker_id: str = ""
    started_at: float | None = None


@dataclass(frozen=True)
class AttemptFailed:
    node_id: str
    attempt: int
    error: dict[str, Any]
    time: float
    worker_id: str = ""
    started_at: float | None = None


@dataclass(frozen=True)
class AttemptLost:
    """The worker went away (stream dropped, lease expired, task handed back)."""

    node_id: str
    attempt: int
    reason: str
    time: float
    worker_id: str = ""
    started_at: float | None = None
    # The worker gave the task back (HandBack): the attempt does not count against the
    # retry policy's max attempts. Its reason then starts with HANDED_BACK, which is how
    # replay tells it from history (ATTEMPT_LOST's data has no other key for it).
    handed_back: bool = False


HANDED_BACK = "handed back"


@dataclass(frozen=True)
class CancelRequested:
    reason: str
    principal: str
    time: float
    # The durable operation (a bulk action over runs) that made it, recorded with it.
    operation_id: str = ""


@dataclass(frozen=True)
class AbandonRequested:
    """An operator gives up on the run: compensate what completed, then end COMPENSATED."""

    reason: str
    principal: str
    time: float
    operation_id: str = ""


@dataclass(frozen=True)
class ApprovalDecided:
    node_id: str
    approve: bool
    principal: str
    comment: str
    time: float
    by_timeout: bool = False
    # The hash of what the approval showed (audit/content.py), recorded with the decision.
    content_hash: str = ""
    # The output an AI node's review approves (has_output: one was given, even null).
    output: Any = None
    has_output: bool = False


@dataclass(frozen=True)
class TimerFired:
    """A durable timer came due: kind is sleep, approval_deadline or event_timeout."""

    node_id: str
    kind: str
    time: float


@dataclass(frozen=True)
class EventReceived:
    node_id: str
    event_name: str
    correlation_key: str
    payload: Any
    event_id: str
    time: float
    # Who sent it: the authenticated caller of SendEvent (law 7).
    principal: str = "system"


@dataclass(frozen=True)
class StepRetryRequested:
    """An operator retries a dead-lettered step; `input` replaces its input unless None."""

    node_id: str
    principal: str
    comment: str
    time: float
    input: Any = None
    edit_input: bool = False
    # The operator checked the service: a connector's record of a call that may have
    # happened is wrong, so drop it and let the retry call again.
    forget_outcome: bool = False
    # The durable operation (a redrive) that made this retry, recorded with it.
    operation_id: str = ""


@dataclass(frozen=True)
class StepSkipRequested:
    """An operator completes a dead-lettered step with `output` instead of running it."""

    node_id: str
    principal: str
    comment: str
    time: float
    output: Any = None


@dataclass(frozen=True)
class PauseRequested:
    """An operator holds the run: no new task of it is handed out until it is resumed."""

    reason: str
    principal: str
    time: float
    operation_id: str = ""


@dataclass(frozen=True)
class ResumeRequested:
    """An operator lets a paused run go on: its waiting tasks are handed out again."""

    principal: str
    time: float
    reason: str = ""
    operation_id: str = ""


RunEvent = (
    AttemptCompleted
    | AttemptFailed
    | AttemptLost
    | CancelRequested
    | AbandonRequested
    | ApprovalDecided
    | TimerFired
    | EventReceived
    | StepRetryRequested
    | StepSkipRequested
    | PauseRequested
    | ResumeRequested
)


@dataclass(frozen=True)
class NewHistoryEvent:
    """An event to append to the run's history (type is surefoot.v1.EventType's short name)."""

    type: str
    time: float
    node_id: str = ""
    attempt: int = 0
    principal: str = "system"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScheduleTask:
    task_id: str
    node_id: str
    attempt: int
    step_type: str
    step_version: str
    idempotency_key: str
    input: Any
    available_at: float
    timeout_seconds: float


@dataclass(frozen=True)
class TimerCommand:
    node_id: str
    kind: str
    due_at: float


@dataclass(frozen=True)
class OpenApproval:
    node_id: str
    # The approval's id: the step's idempotency key, so each entry into the node (a loop
    # back after a rejection) is an approval of its own.
    approval_id: str
    title: str
    approvers: tuple[str, ...]
    shown: dict[str, Any]
    deadline: float | None


@dataclass(frozen=True)
class CloseApproval:
    node_id: str
    approval_id: str
    # APPROVED, REJECTED or WITHDRAWN
    status: str
    decided_by: str
    decided_at: float
    comment: str = ""
    by_timeout: bool = False


@dataclass(frozen=True)
class EscalateApproval:
    node_id: str
    approval_id: str
    escalate_to: tuple[str, ...]


@dataclass(frozen=True)
class OpenEventWait:
    node_id: str
    event_name: str
    correlation_key: str
    # An event sent at most this long before the wait opened is consumed by it.
    retention_seconds: float


@dataclass
class Transition:
    """The commands of one state change; the store applies them in one transaction."""

    events: list[NewHistoryEvent] = field(default_factory=list)
    schedule: list[ScheduleTask] = field(default_factory=list)
    # Task rows to delete (the attempt is over).
    remove: list[str] = field(default_factory=list)
    # Leased tasks whose worker should be told to stop.
    cancel: list[str] = field(default_factory=list)
    timers: list[TimerCommand] = field(default_factory=list)
    # (node id, kind) of timers that no longer matter.
    cancel_timers: list[tuple[str, str]] = field(default_factory=list)
    open_approvals: list[OpenApproval] = field(default_factory=list)
    close_approvals: list[CloseApproval] = field(default_factory=list)
    escalations: list[EscalateApproval] = field(default_factory=list)
    open_waits: list[OpenEventWait] = field(default_factory=list)
    close_waits: list[str] = field(default_factory=list)
    # Idempotency keys whose connector outcome records are to be deleted.
    forget_outcomes: list[str] = field(default_factory=list)
