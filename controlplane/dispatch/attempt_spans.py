"""The OpenTelemetry span of an attempt whose outcome a transaction records."""

from __future__ import annotations

from controlplane import telemetry
from controlplane.engine.events import AttemptCompleted, AttemptFailed, AttemptLost
from controlplane.engine.state import OPEN_STEP
from controlplane.store.run_batch import LoadedRun, traceparent_for

_OUTCOMES = {AttemptCompleted: "completed", AttemptFailed: "failed", AttemptLost: "lost"}


def attempt_span(
    loaded: LoadedRun,
    event: AttemptCompleted | AttemptFailed | AttemptLost,
    started: float | None,
) -> telemetry.AttemptSpan | None:
    """The span of the attempt `event` ends; None for a late result of one already ended."""
    state = loaded.state
    step = state.steps.get(event.node_id)
    if step is None or step.attempt != event.attempt or step.status not in OPEN_STEP:
        return None  # a late result for an attempt already recorded: its span exists
    error_type = error_message = ""
    if isinstance(event, AttemptFailed):
        error_type = str(event.error.get("type", "Error"))
        error_message = str(event.error.get("message", ""))
    elif isinstance(event, AttemptLost):
        error_type, error_message = "AttemptLost", event.reason
    return telemetry.AttemptSpan(
        traceparent=traceparent_for(loaded.trace_id, step.task_id),
        run_id=state.id,
        workflow=f"{state.workflow_name}@{state.workflow_version}",
        node_id=event.node_id,
        step_type=step.step_type,
        attempt=event.attempt,
        idempotency_key=step.idempotency_key,
        outcome=_OUTCOMES[type(event)],
        started=started,
        ended=event.time,
        worker_id=event.worker_id,
        error_type=error_type,
        error_message=error_message,
    )
