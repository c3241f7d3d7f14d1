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


@dataclass(frozen=True)
class CancelRequested:
    reason: str
    principal: str
    time: float


RunEvent = AttemptCompleted | AttemptFailed | AttemptLost | CancelRequested


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


@dataclass
class Transition:
    """The commands of one state change; the store applies them in one transaction."""

    events: list[NewHistoryEvent] = field(default_factory=list)
    schedule: list[ScheduleTask] = field(default_factory=list)
    # Task rows to delete (the attempt is over).
    remove: list[str] = field(default_factory=list)
    # Leased tasks whose worker should be told to stop.
    cancel: list[str] = field(default_factory=list)

    def extend(self, other: Transition) -> None:
        self.events.extend(other.events)
        self.schedule.extend(other.schedule)
        self.remove.extend(other.remove)
        self.cancel.extend(other.cancel)
