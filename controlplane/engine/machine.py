"""The run state machine: sequential task nodes with retry, dead letters and cancellation.

Every function here is pure: time arrives in the event, randomness through `uniform`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from controlplane.engine import state as s
from controlplane.engine.definition import CompiledDefinition, StepCatalog, resolve_step_policy
from controlplane.engine.events import (
    AttemptCompleted,
    AttemptFailed,
    AttemptLost,
    CancelRequested,
    NewHistoryEvent,
    RunEvent,
    ScheduleTask,
    Transition,
)
from controlplane.engine.retry import RetryPolicy

Uniform = Callable[[], float]


class RunClosed(Exception):
    """The run has ended; the request cannot change it."""


def start_run(
    *,
    run_id: str,
    namespace: str,
    definition: CompiledDefinition,
    input: Any,
    time: float,
    catalog: StepCatalog,
    request_id: str = "",
    principal: str = "system",
) -> tuple[s.RunState, Transition]:
    """The state of a new run and its first commands (history, first task)."""
    run = s.RunState(
        id=run_id,
        namespace=namespace,
        workflow_name=definition.name,
        workflow_version=definition.version,
        status=s.RUNNING,
        input=input,
        created_at=time,
        updated_at=time,
    )
    transition = Transition()
    transition.events.append(
        NewHistoryEvent(
            "RUN_STARTED",
            time,
            principal=principal,
            data={
                "workflow": definition.name,
                "version": definition.version,
                "input": input,
                "request_id": request_id,
            },
        )
    )
    _enter_node(run, definition, catalog, definition.start, time, transition)
    return run, transition


def apply(
    run: s.RunState,
    event: RunEvent,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    uniform: Uniform,
) -> tuple[s.RunState, Transition]:
    """The run after `event`, and the commands that make it so. `run` is not modified.

    Raises:
        RunClosed: a cancellation of a run that has ended.
    """
    run = dataclasses.replace(run, steps=dict(run.steps))
    transition = Transition()
    if isinstance(event, CancelRequested):
        _cancel(run, event, transition)
    else:
        step = _current_step(run, event, transition)
        if step is not None:
            if isinstance(event, AttemptCompleted):
                _completed(run, step, event, definition, catalog, transition)
            elif isinstance(event, AttemptFailed):
                _failed(run, step, event, definition, catalog, uniform, transition)
            else:
                _lost(run, step, event, definition, catalog, transition)
    run.updated_at = max(run.updated_at, event.time)
    return run, transition


def _current_step(
    run: s.RunState,
    event: AttemptCompleted | AttemptFailed | AttemptLost,
    transition: Transition,
) -> s.StepState | None:
    """The step the result is for, copied for change; None (and a RESULT_IGNORED record) when
    the result is for an attempt that is no longer current (law 3)."""
    found = run.steps.get(event.node_id)
    reason = ""
    if run.status in s.TERMINAL:
        reason = f"run is {run.status}"
    elif found is None:
        reason = f"run has no step {event.node_id!r}"
    elif found.attempt != event.attempt:
        reason = f"attempt {event.attempt} is superseded by attempt {found.attempt}"
    elif found.status not in s.OPEN_STEP:
        reason = f"step is {found.status}"
    if reason:
        transition.events.append(
            NewHistoryEvent(
                "RESULT_IGNORED",
                event.time,
                event.node_id,
                event.attempt,
                principal=event.worker_id or "system",
                data={"reason": reason, "result": _result_data(event)},
            )
        )
        return None
    assert found is not None
    step = dataclasses.replace(found)
    run.steps[step.node_id] = step
    if event.started_at is not None:
        transition.events.append(
            NewHistoryEvent(
                "ATTEMPT_STARTED",
                event.started_at,
                step.node_id,
                step.attempt,
                principal=event.worker_id or "system",
                data={"worker_id": event.worker_id, "task_id": step.task_id},
            )
        )
    return step


def _result_data(event: AttemptCompleted | AttemptFailed | AttemptLost) -> dict[str, Any]:
    if isinstance(event, AttemptCompleted):
        return {"outcome": "COMPLETED", "output": event.output}
    if isinstance(event, AttemptFailed):
        return {"outcome": "FAILED", "error": event.error}
    return {"outcome": "LOST", "reason": event.reason}


def _completed(
    run: s.RunState,
    step: s.StepState,
    event: AttemptCompleted,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    transition: Transition,
) -> None:
    transition.events.append(
        NewHistoryEvent(
            "ATTEMPT_COMPLETED",
            event.time,
            step.node_id,
            step.attempt,
            principal=event.worker_id or "system",
            data={"output": event.output},
        )
    )
    transition.remove.append(step.task_id)
    run.completions += 1
    step.status = s.STEP_COMPLETED
    step.output = event.output
    step.completed_at = event.time
    step.completion_index = run.completions
    step.next_attempt_at = None
    next_node = definition.nodes[step.node_id].next
    if next_node:
        _enter_node(run, definition, catalog, next_node, event.time, transition)
    else:
        _close(run, s.COMPLETED, event.time, transition, output=event.output)


def _failed(
    run: s.RunState,
    step: s.StepState,
    event: AttemptFailed,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    uniform: Uniform,
    transition: Transition,
) -> None:
    transition.events.append(
        NewHistoryEvent(
            "ATTEMPT_FAILED",
            event.time,
            step.node_id,
            step.attempt,
            principal=event.worker_id or "system",
            data={"error": event.error},
        )
    )
    transition.remove.append(step.task_id)
    step.last_error = event.error
    policy = RetryPolicy.from_json(step.retry)
    error_type = str(event.error.get("type", ""))
    if not event.error.get("retryable", True) or error_type in policy.non_retryable_error_types:
        _dead_letter(
            run,
            step,
            event.error,
            "non-retryable error",
            definition,
            catalog,
            event.time,
            transition,
        )
    elif policy.gives_up_after(step.attempt):
        _dead_letter(
            run,
            step,
            event.error,
            f"gave up after {step.attempt} attempts",
            definition,
            catalog,
            event.time,
            transition,
        )
    else:
        delay = policy.delay_for(step.attempt, uniform)
        _retry(run, step, delay, "attempt failed", event.time, transition)


def _lost(
    run: s.RunState,
    step: s.StepState,
    event: AttemptLost,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    transition: Transition,
) -> None:
    transition.events.append(
        NewHistoryEvent(
            "ATTEMPT_LOST",
            event.time,
            step.node_id,
            step.attempt,
            principal=event.worker_id or "system",
            data={"reason": event.reason},
        )
    )
    transition.remove.append(step.task_id)
    error = {"type": "AttemptLost", "message": event.reason, "retryable": True, "details": ""}
    step.last_error = error
    policy = RetryPolicy.from_json(step.retry)
    if step.idempotency == "none":
        # It may have happened: only a human can tell whether running it again is safe.
        error["retryable"] = False
        _dead_letter(
            run,
            step,
            error,
            "idempotency none: not retried automatically",
            definition,
            catalog,
            event.time,
            transition,
        )
    elif policy.gives_up_after(step.attempt):
        _dead_letter(
            run,
            step,
            error,
            f"gave up after {step.attempt} attempts",
            definition,
            catalog,
            event.time,
            transition,
        )
    else:
        # The worker, not the step, failed: hand it to another worker at once.
        _retry(run, step, 0.0, event.reason, event.time, transition)


def _retry(
    run: s.RunState,
    step: s.StepState,
    delay: float,
    reason: str,
    time: float,
    transition: Transition,
) -> None:
    step.attempt += 1
    due = time + delay
    step.status = s.RETRY_WAIT if delay > 0 else s.SCHEDULED
    step.next_attempt_at = due if delay > 0 else None
    transition.events.append(
        NewHistoryEvent(
            "RETRY_SCHEDULED",
            time,
            step.node_id,
            step.attempt,
            data={"delay_seconds": round(delay, 6), "due_at": due, "reason": reason},
        )
    )
    transition.schedule.append(_task_for(step, due))


def _dead_letter(
    run: s.RunState,
    step: s.StepState,
    error: dict[str, Any],
    reason: str,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    time: float,
    transition: Transition,
) -> None:
    step.status = s.DEAD_LETTERED
    step.last_error = error
    step.next_attempt_at = None
    transition.events.append(
        NewHistoryEvent(
            "STEP_DEAD_LETTERED",
            time,
            step.node_id,
            step.attempt,
            data={"error": error, "reason": reason, "attempts": step.attempt},
        )
    )
    spec = definition.nodes[step.node_id]
    if spec.on_failure == "fail":
        run.last_error = error
        _close(run, s.FAILED, time, transition)
    elif spec.on_failure_next:
        _enter_node(run, definition, catalog, spec.on_failure_next, time, transition)
    else:
        run.status = s.NEEDS_ATTENTION
        run.last_error = error
        run.waiting_for = f"an operator: step {step.node_id!r} is dead-lettered ({reason})"
        run.waiting_since = time


def _enter_node(
    run: s.RunState,
    definition: CompiledDefinition,
    catalog: StepCatalog,
    node_id: str,
    time: float,
    transition: Transition,
) -> None:
    spec = definition.nodes[node_id]
    run.current_node = node_id
    run.waiting_for = None
    run.waiting_since = None
    previous = run.steps.get(node_id)
    # Entering a node again (a fallback loop) continues its attempt numbers so that task ids
    # stay unique.
    attempt = previous.attempt + 1 if previous else 1
    resolved = resolve_step_policy(spec, catalog)
    idempotency, retry = resolved if resolved else ("", RetryPolicy())
    step = s.StepState(
        node_id=node_id,
        step_type=spec.step_type,
        step_version=spec.step_version,
        status=s.SCHEDULED,
        attempt=attempt,
        idempotency_key=s.idempotency_key_for(run.id, node_id),
        idempotency=idempotency,
        retry=retry.to_json(),
        input=None,
        scheduled_at=time,
    )
    run.steps[node_id] = step
    error: dict[str, Any] | None = None
    try:
        step.input = spec.evaluate_input(run.context())
    except Exception as exc:  # a JMESPath evaluation error is a definition bug, not a crash
        error = {"type": "ExpressionError", "message": str(exc), "retryable": False}
    if resolved is None:
        error = {
            "type": "StepNotDeclared",
            "message": f"step type {spec.step_type!r} has no idempotency declaration",
            "retryable": False,
        }
    transition.events.append(
        NewHistoryEvent(
            "STEP_SCHEDULED",
            time,
            node_id,
            attempt,
            data={
                "step_type": spec.step_type,
                "step_version": spec.step_version,
                "input": step.input,
                "idempotency_key": step.idempotency_key,
                "idempotency": idempotency,
                "task_id": step.task_id,
            },
        )
    )
    if error is not None:
        error.setdefault("details", "")
        _dead_letter(run, step, error, error["type"], definition, catalog, time, transition)
        return
    transition.schedule.append(_task_for(step, time, spec.timeout_seconds))


def _task_for(step: s.StepState, available_at: float, timeout: float = 0.0) -> ScheduleTask:
    return ScheduleTask(
        task_id=step.task_id,
        node_id=step.node_id,
        attempt=step.attempt,
        step_type=step.step_type,
        step_version=step.step_version,
        idempotency_key=step.idempotency_key,
        input=step.input,
        available_at=available_at,
        timeout_seconds=timeout,
    )


def _cancel(run: s.RunState, event: CancelRequested, transition: Transition) -> None:
    if run.status in s.TERMINAL:
        raise RunClosed(f"run {run.id} is already {run.status}")
    for node_id, step in list(run.steps.items()):
        if step.status in s.OPEN_STEP:
            run.steps[node_id] = dataclasses.replace(step, status=s.STEP_CANCELLED)
            transition.remove.append(step.task_id)
            transition.cancel.append(step.task_id)
    transition.events.append(
        NewHistoryEvent(
            "RUN_CANCELLED", event.time, principal=event.principal, data={"reason": event.reason}
        )
    )
    _close(run, s.CANCELLED, event.time, transition, announce=False)


def _close(
    run: s.RunState,
    status: str,
    time: float,
    transition: Transition,
    *,
    output: Any = None,
    announce: bool = True,
) -> None:
    run.status = status
    run.closed_at = time
    run.output = output
    run.waiting_for = None
    run.waiting_since = None
    if announce:
        kind = "RUN_COMPLETED" if status == s.COMPLETED else "RUN_FAILED"
        data: dict[str, Any] = (
            {"output": output} if status == s.COMPLETED else {"error": run.last_error}
        )
        transition.events.append(NewHistoryEvent(kind, time, data=data))
