"""The run and wait spans a state change of a run ends, for the committer to emit.

Derived from the run's state before and after the change, which is its history folded: a wait's
start is when its step was entered (or its attempt failed), a run's when it was created. Nothing
is kept in memory while a run waits (law 5), and a control plane restarted mid-wait emits the
same span, with the same id, as the one that saw the wait begin would have.
"""

from __future__ import annotations

from controlplane.engine import state as s
from controlplane.engine.kinds import NodeKind
from controlplane.tracing.spans import RunSpan, TraceSpan, WaitSpan, wait_span_id

# The steps that wait on something other than a worker, and what their wait is called (an AI
# step waits only for a person's review of its output, an approval in history).
WAITS = {
    NodeKind.APPROVAL: "approval",
    NodeKind.AI: "approval",
    NodeKind.SLEEP: "timer",
    NodeKind.WAIT_EVENT: "event",
}
# Step statuses of a wait; every other step costs one set lookup per change of its run.
_WAITING = frozenset({s.STEP_WAITING, s.RETRY_WAIT})


def spans_ended(
    trace_id: str, before: s.RunState | None, after: s.RunState, now: float
) -> list[TraceSpan]:
    """The spans that end with the change from `before` (None: a new run) to `after`."""
    spans: list[TraceSpan] = []
    workflow = f"{after.workflow_name}@{after.workflow_version}"
    if before is not None:
        for node_id, old in before.steps.items():
            if old.status not in _WAITING:
                continue
            new = after.steps.get(node_id)
            if new is old:
                continue  # the engine copies a step it changes: this one did not
            left = new is None or new.status != old.status
            if old.status == s.STEP_WAITING and old.kind in WAITS:
                if left or new is None or new.entry != old.entry:
                    spans.append(_wait(trace_id, after, workflow, old, new, now))
            elif old.status == s.RETRY_WAIT and (left or new is None or new.attempt != old.attempt):
                spans.append(_backoff(trace_id, after, workflow, old, now))
    ended = before is None or before.status not in s.TERMINAL
    if ended and after.status in s.TERMINAL:
        error = after.last_error or {}
        spans.append(
            RunSpan(
                trace_id=trace_id,
                run_id=after.id,
                namespace=after.namespace,
                workflow=workflow,
                status=str(after.status),
                started=after.created_at,
                ended=max(after.closed_at or now, after.created_at),
                error_type=str(error.get("type") or "") if after.status != s.COMPLETED else "",
                error_message=str(error.get("message") or "")
                if after.status != s.COMPLETED
                else "",
            )
        )
    return spans


def _wait(
    trace_id: str,
    run: s.RunState,
    workflow: str,
    old: s.StepState,
    new: s.StepState | None,
    now: float,
) -> WaitSpan:
    what = WAITS[NodeKind(old.kind)]
    outcome = _outcome(what, new) if new is not None and new.entry == old.entry else ""
    return WaitSpan(
        trace_id=trace_id,
        span_id=wait_span_id(run.id, old.node_id, old.entry, what),
        run_id=run.id,
        workflow=workflow,
        node_id=old.node_id,
        what=what,
        started=old.scheduled_at,
        ended=max(now, old.scheduled_at),
        outcome=outcome,
    )


def _outcome(what: str, step: s.StepState) -> str:
    """How the wait ended, in the words of the history event that ended it."""
    if step.status == s.STEP_COMPLETED:
        if what == "approval" and isinstance(step.output, dict) and "approved" in step.output:
            return "approved" if step.output["approved"] else "rejected"
        return _COMPLETED.get(what, "completed")
    return str(step.status).lower()


_COMPLETED = {"timer": "fired", "event": "received"}


def _backoff(
    trace_id: str, run: s.RunState, workflow: str, old: s.StepState, now: float
) -> WaitSpan:
    """A retry's delay: from the failed attempt's end to when the next one was due (or
    earlier, if the run stopped waiting for it)."""
    previous = old.finished_attempts[-1] if old.finished_attempts else {}
    started = float(previous.get("ended_at") or old.scheduled_at)
    ended = min(old.next_attempt_at or now, now)
    return WaitSpan(
        trace_id=trace_id,
        span_id=wait_span_id(run.id, old.node_id, old.entry, "backoff", old.attempt),
        run_id=run.id,
        workflow=workflow,
        node_id=old.node_id,
        what="backoff",
        started=started,
        ended=max(ended, started),
        attempt=old.attempt,
    )
