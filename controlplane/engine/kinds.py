"""The kinds of nodes and timers, and the statuses of runs and steps.

StrEnums: each member equals the string stored in `runs.state`, history and the timer rows, so
stored JSON reads back unchanged and code comparing with plain strings keeps working.
"""

from __future__ import annotations

from enum import StrEnum


class NodeKind(StrEnum):
    """What a step is: a node kind of the definition, or a saga's compensation."""

    TASK = "task"
    APPROVAL = "approval"
    SLEEP = "sleep"
    WAIT_EVENT = "wait_event"
    SWITCH = "switch"
    PARALLEL = "parallel"
    # A model call validated against a schema: a task of the built-in "surefoot.ai" step.
    AI = "ai"
    COMPENSATION = "compensation"


class TimerKind(StrEnum):
    SLEEP = "sleep"
    APPROVAL_DEADLINE = "approval_deadline"
    EVENT_TIMEOUT = "event_timeout"
    # The deadline of an AI node's human review.
    AI_REVIEW_DEADLINE = "ai_review_deadline"


class RunStatus(StrEnum):
    """surefoot.v1.RunStatus without the prefix."""

    RUNNING = "RUNNING"
    WAITING = "WAITING"
    NEEDS_ATTENTION = "NEEDS_ATTENTION"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    COMPENSATED = "COMPENSATED"
    CANCELLED = "CANCELLED"


class StepStatus(StrEnum):
    """surefoot.v1.StepStatus without the prefix."""

    SCHEDULED = "SCHEDULED"
    RUNNING = "RUNNING"
    RETRY_WAIT = "RETRY_WAIT"
    COMPLETED = "COMPLETED"
    DEAD_LETTERED = "DEAD_LETTERED"
    CANCELLED = "CANCELLED"
    WAITING = "WAITING"
    COMPENSATED = "COMPENSATED"
