"""The state of a run as the engine sees it, and its JSON form in the `runs.state` column.

Each change of a step's status is one method of `StepState`, so that what a status implies
(a due time cleared, a completion time set) is decided in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controlplane.engine.kinds import NodeKind, RunStatus, StepStatus

# Module-level names, kept for the code that reads them; the hot paths use them too, since
# on Python 3.11 reading a member off its enum class costs a descriptor call per read.
RUNNING = RunStatus.RUNNING
WAITING = RunStatus.WAITING
NEEDS_ATTENTION = RunStatus.NEEDS_ATTENTION
COMPENSATING = RunStatus.COMPENSATING
COMPLETED = RunStatus.COMPLETED
FAILED = RunStatus.FAILED
COMPENSATED = RunStatus.COMPENSATED
CANCELLED = RunStatus.CANCELLED
TERMINAL = frozenset({COMPLETED, FAILED, COMPENSATED, CANCELLED})

SCHEDULED = StepStatus.SCHEDULED
STEP_RUNNING = StepStatus.RUNNING
RETRY_WAIT = StepStatus.RETRY_WAIT
STEP_COMPLETED = StepStatus.COMPLETED
DEAD_LETTERED = StepStatus.DEAD_LETTERED
STEP_CANCELLED = StepStatus.CANCELLED
STEP_WAITING = StepStatus.WAITING
COMPENSATED_STEP = StepStatus.COMPENSATED
# A task node whose attempt is scheduled, running or waiting out a retry delay.
OPEN_STEP = frozenset({SCHEDULED, STEP_RUNNING, RETRY_WAIT})
# Any node the run is still at: open tasks, waits, a parallel node before its join.
ACTIVE = OPEN_STEP | {STEP_WAITING}
# Kinds whose steps are attempts a worker runs.
WORKER_KINDS = frozenset({NodeKind.TASK, NodeKind.AI, NodeKind.COMPENSATION})


@dataclass(frozen=True)
class StepError:
    """Why a step failed, as kept in `last_error` and history (its JSON form is the contract)."""

    type: str
    message: str
    retryable: bool = False
    details: str = ""
    # Seconds the step asked to wait before the next attempt (an HTTP Retry-After).
    retry_after: float | None = None

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "retryable": self.retryable,
            "details": self.details,
        }
        if self.retry_after is not None:
            found["retry_after"] = self.retry_after
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepError:
        """Read a stored or reported error; what a worker left out takes the worker defaults
        (an error is retryable unless it says otherwise)."""
        retry_after = data.get("retry_after")
        return cls(
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            retryable=bool(data.get("retryable", True)),
            details=str(data.get("details", "")),
            retry_after=float(retry_after) if retry_after else None,
        )


@dataclass
class StepState:
    node_id: str
    step_type: str
    step_version: str
    status: str
    attempt: int
    idempotency_key: str
    idempotency: str
    retry: dict[str, Any]
    input: Any
    scheduled_at: float
    output: Any = None
    last_error: dict[str, Any] | None = None
    next_attempt_at: float | None = None
    completed_at: float | None = None
    # Order in which steps completed, for reverse-order compensation.
    completion_index: int | None = None
    kind: str = NodeKind.TASK
    # Kind-specific facts: an approval's request, a timer's due time, a join's open branches.
    data: dict[str, Any] = field(default_factory=dict)
    # How many times the run has entered this node (a loop back through a switch or a
    # fallback enters it again): each entry is a new operation with its own idempotency key.
    entry: int = 1
    # Attempts before an operator's retry: the policy's budget starts again after it.
    retry_base: int = 0
    # Each finished attempt, oldest first (number, worker_id, started_at, ended_at, outcome,
    # error): what GetRun shows of them, read with the run's row instead of its history.
    finished_attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return task_id_for(self.idempotency_key, self.attempt)

    def schedule(self, time: float) -> None:
        """The next attempt, to be handed out now (an operator's retry)."""
        self.attempt += 1
        self.status = SCHEDULED
        self.next_attempt_at = None
        self.scheduled_at = time

    def retry_later(self, due: float, delay: float) -> None:
        """The next attempt, handed out at `due` (at once when there is no delay)."""
        self.attempt += 1
        self.status = RETRY_WAIT if delay > 0 else SCHEDULED
        self.next_attempt_at = due if delay > 0 else None

    def finish_attempt(
        self,
        outcome: str,
        time: float,
        worker_id: str,
        started_at: float | None,
        error: dict[str, Any] | None = None,
    ) -> None:
        """The current attempt ended (COMPLETED, FAILED or LOST); kept for GetRun."""
        # A new list, not an append: the step is a shallow copy whose list the input run shares.
        self.finished_attempts = [
            *self.finished_attempts,
            {
                "number": self.attempt,
                "worker_id": worker_id,
                "started_at": started_at,
                "ended_at": time,
                "outcome": outcome,
                "error": error,
            },
        ]

    def fail(self, error: dict[str, Any]) -> None:
        """An attempt failed or was lost; whether it is retried is decided next."""
        self.last_error = error

    def complete(self, time: float, output: Any = None, index: int | None = None) -> None:
        self.status = STEP_COMPLETED
        self.output = output
        # What went wrong before is history's now: a completed step has no current error.
        self.last_error = None
        self.completed_at = time
        self.completion_index = index
        self.next_attempt_at = None

    def dead_letter(self, error: dict[str, Any]) -> None:
        self.status = DEAD_LETTERED
        self.last_error = error
        self.next_attempt_at = None

    def cancel(self) -> None:
        self.status = STEP_CANCELLED
        self.next_attempt_at = None

    def compensated(self) -> None:
        self.status = COMPENSATED_STEP


@dataclass
class RunState:
    id: str
    namespace: str
    workflow_name: str
    workflow_version: str
    status: str
    input: Any
    created_at: float
    updated_at: float
    output: Any = None
    current_node: str | None = None
    last_error: dict[str, Any] | None = None
    waiting_for: str | None = None
    waiting_since: float | None = None
    closed_at: float | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    completions: int = 0
    # Nodes whose compensation is still to run, next first (saga).
    compensation: list[str] = field(default_factory=list)
    # The dead-lettered step an operator must decide on while the run is NEEDS_ATTENTION.
    attention: str | None = None
    # Set while an operator holds the run (PauseRun): {"by", "since", "reason"}. Its tasks
    # wait unleased until ResumeRun (engine/pausing.py says what a pause holds).
    paused: dict[str, Any] | None = None

    def context(self) -> dict[str, Any]:
        """What expressions read: the run input and every completed step's output."""
        return {
            "input": self.input,
            "steps": {
                node: {"output": step.output}
                for node, step in self.steps.items()
                if step.status == STEP_COMPLETED
            },
        }

    def steps_json(self) -> dict[str, Any]:
        return {
            "completions": self.completions,
            "compensation": self.compensation,
            "attention": self.attention,
            "paused": self.paused,
            # vars() rather than asdict(): the fields are plain JSON values, and asdict's
            # deep copy is the most expensive part of saving a run.
            "steps": {node: vars(step) for node, step in self.steps.items()},
        }

    @staticmethod
    def steps_from_json(data: dict[str, Any]) -> tuple[int, dict[str, StepState]]:
        steps = {node: StepState(**value) for node, value in data.get("steps", {}).items()}
        return int(data.get("completions", 0)), steps

    @staticmethod
    def compensation_from_json(data: dict[str, Any]) -> list[str]:
        return list(data.get("compensation", []))

    @staticmethod
    def attention_from_json(data: dict[str, Any]) -> str | None:
        found = data.get("attention")
        return str(found) if found else None

    @staticmethod
    def paused_from_json(data: dict[str, Any]) -> dict[str, Any] | None:
        found = data.get("paused")
        return dict(found) if found else None


def compensation_key(node_id: str) -> str:
    """The step key of a node's compensation; '.' cannot occur in node ids, so no clash."""
    return f"{node_id}.compensation"


def idempotency_key_for(run_id: str, node_id: str, entry: int = 1) -> str:
    """Stable across attempts, lease expiries and restarts; unique per step of a run and per
    entry into the node ("<run>:<node>", then "<run>:<node>#2" when a loop comes back).

    Parallel branches are distinct nodes, so they have distinct keys by construction."""
    return f"{run_id}:{node_id}" if entry == 1 else f"{run_id}:{node_id}{ENTRY_MARK}{entry}"


# Cannot occur in a node id (NODE_ID_PATTERN), so "<node>#<entry>" parses back unambiguously.
ENTRY_MARK = "#"


def task_id_for(idempotency_key: str, attempt: int) -> str:
    return f"{idempotency_key}:{attempt}"


def parse_task_id(task_id: str) -> tuple[str, str, int] | None:
    """(run id, node id, attempt) from a task id, or None if it is not one of ours."""
    parts = task_id.split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1].partition(ENTRY_MARK)[0], int(parts[2])
