"""Pausing a run: an operator holds it so that it starts no new step, then lets it go on.

A pause is a fact about the run (`RunState.paused`: by whom, since when, why) and an event in
its history; it changes no step. What it holds is the hand-out of tasks: the dispatcher keeps
every task of a paused run in the `paused` state instead of `ready` (dispatch/claims.py), so
an attempt already leased finishes and is recorded as usual, and the steps that follow it (a
retry, the next node, a branch) are scheduled and wait. Approvals, timers and events go on
being decided, firing and arriving: they are not steps a worker starts, and whatever task
they lead to waits like the others. Resuming makes the waiting tasks ready at once.
"""

from __future__ import annotations

from typing import Any

from controlplane.engine import state as s
from controlplane.engine.events import PauseRequested, ResumeRequested
from controlplane.engine.flow import Flow


class PauseRefused(Exception):
    """The run has ended, is already paused (pause) or is not paused (resume)."""


def pause(flow: Flow, event: PauseRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL:
        raise PauseRefused(f"run {run.id} is already {run.status}")
    if run.paused is not None:
        raise PauseRefused(f"run {run.id} is already paused by {run.paused.get('by', '')!r}")
    run.paused = {"by": event.principal, "since": event.time, "reason": event.reason}
    flow.record(
        "RUN_PAUSED",
        principal=event.principal,
        reason=event.reason,
        **_made_by(event.operation_id),
    )


def resume(flow: Flow, event: ResumeRequested) -> None:
    run = flow.run
    if run.status in s.TERMINAL:
        raise PauseRefused(f"run {run.id} is already {run.status}")
    if run.paused is None:
        raise PauseRefused(f"run {run.id} is not paused")
    since = float(run.paused.get("since", event.time))
    run.paused = None
    flow.record(
        "RUN_RESUMED",
        principal=event.principal,
        paused_seconds=round(max(0.0, event.time - since), 6),
        **({"reason": event.reason} if event.reason else {}) | _made_by(event.operation_id),
    )


def _made_by(operation_id: str) -> dict[str, Any]:
    """The durable operation behind the event, when one made it (a bulk pause or resume)."""
    return {"operation_id": operation_id} if operation_id else {}
