"""Requests to the committer. Each is applied inside a group-committed transaction."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from controlplane import errors
from controlplane.dispatch.sessions import WorkerSession
from controlplane.engine.events import StepRetryRequested, StepSkipRequested

# The refusals an operation may raise; `Conflict` is the dispatcher's older name.
NotFound = errors.NotFound
Conflict = errors.FailedPrecondition
PermissionDenied = errors.PermissionDenied


@dataclass
class Operation:
    future: asyncio.Future[Any] | None = field(default=None, init=False, repr=False)
    # Session changes happen outside the transaction: a retried batch must not redo them.
    applied: bool = field(default=False, init=False, repr=False)


@dataclass
class StartRun(Operation):
    namespace: str
    workflow_name: str
    # "" or "latest" for the newest active version.
    workflow_version: str
    input: Any
    request_id: str
    principal: str


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    created: bool
    workflow_version: str


@dataclass
class RecordResult(Operation):
    """A worker's Complete, Fail or HandBack for one attempt."""

    session_id: str
    worker_id: str
    task_id: str
    kind: str  # "complete" | "fail" | "hand_back"
    output: Any = None
    error: dict[str, Any] | None = None
    reason: str = ""


class InvalidInput(errors.InvalidArgument):
    """The run input does not match the workflow's declared JSON Schema."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        # (JSON pointer into the input, what is wrong there), every one of them.
        self.problems = problems
        super().__init__(
            message,
            [
                ("input" + ("" if where == "/" else where.replace("/", ".")), text)
                for where, text in problems
            ],
        )


@dataclass
class CancelRun(Operation):
    namespace: str
    run_id: str
    reason: str
    principal: str
    # Abandon: compensate what completed instead of just stopping.
    compensate: bool = False


@dataclass
class TriageStep(Operation):
    """An operator's retry or skip of a run's dead letter."""

    namespace: str
    run_id: str
    event: StepRetryRequested | StepSkipRequested


@dataclass
class DecideApproval(Operation):
    namespace: str
    approval_id: str
    approve: bool
    comment: str
    principal: str
    # "group:<name>" for each group of the principal.
    groups: tuple[str, ...] = ()


@dataclass
class SendEvent(Operation):
    namespace: str
    event_name: str
    correlation_key: str
    payload: Any
    event_id: str


@dataclass(frozen=True)
class SentEvent:
    event_id: str
    delivered_to: list[str]
    stored: bool


@dataclass
class OpenSession(Operation):
    session: WorkerSession


@dataclass
class GrantCredit(Operation):
    session_id: str
    n: int


@dataclass
class StartDraining(Operation):
    session_id: str


@dataclass
class CloseSession(Operation):
    session_id: str
    reason: str
    # False when this control plane is shutting down: the worker will reconnect to another
    # one and report its in-flight tasks there, so their leases are left to run.
    release_leases: bool = True


@dataclass
class ExtendLeases(Operation):
    task_ids: list[str]


@dataclass
class LookForTasks(Operation):
    """Another control plane committed tasks this one may hand out."""
