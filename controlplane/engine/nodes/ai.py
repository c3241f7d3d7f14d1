"""An AI node: a model call whose reply must validate against a JSON Schema.

It runs as a task of the built-in connector step type `surefoot.ai` (dispatched, retried and
dead-lettered like any task): the connector calls the model and its fallback models and
applies a default output. What needs the run's state is the engine's: the run's AI budget
(the usage of the run's earlier AI steps goes into each task input) and a human review, an
approval the step waits on when the model's replies never validated.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema
from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.ai_checks import ai_node_problems
from controlplane.engine.checks import Problems
from controlplane.engine.events import (
    ApprovalDecided,
    AttemptCompleted,
    CloseApproval,
    TimerFired,
)
from controlplane.engine.kinds import NodeKind, TimerKind
from controlplane.engine.nodes.ai_spec import (
    AI_STEP_TYPE,
    AI_STEP_VERSION,
    DEFAULT_AI_RETRY,
    FINAL_REVIEW,
    OUTPUT_INVALID,
    AiSpec,
    ai_task_input,
    compile_ai,
)
from controlplane.engine.nodes.approval import request_approval
from controlplane.engine.nodes.base import NodeType, NotWaiting, OutputRefused, waiting_step
from controlplane.engine.nodes.task import cancel_attempt
from controlplane.engine.step_types import StepCatalog

if TYPE_CHECKING:
    from controlplane.engine.flow import Flow

__all__ = ["Ai", "AiSpec", "OutputRefused", "ai_task_input", "run_usage"]


class Ai(NodeType[AiSpec]):
    kind = NodeKind.AI
    proto_field = "ai"
    timer_kinds = (TimerKind.AI_REVIEW_DEADLINE,)

    def compile(self, node: definition_pb2.Node) -> AiSpec:
        return compile_ai(node)

    def problems(
        self,
        where: str,
        label: str,
        node: definition_pb2.Node,
        ids: dict[str, int],
        catalog: StepCatalog,
    ) -> Problems:
        return ai_node_problems(where, label, node, ids)

    def successors(self, spec: AiSpec) -> list[str | None]:
        return [spec.on_failure_next]

    def enter(self, flow: Flow, spec: AiSpec) -> None:
        declared = flow.catalog(AI_STEP_TYPE, AI_STEP_VERSION)
        retry = spec.retry or (declared.retry if declared else DEFAULT_AI_RETRY)
        # The usage of the node's earlier entries stays counted (a loop re-enters it).
        previous = flow.run.steps.get(spec.node_id)
        carried = dict(previous.data.get("usage", {})) if previous else {}
        tokens, cost = run_usage(flow.run)
        step = flow.new_step(
            spec.node_id,
            NodeKind.AI,
            s.SCHEDULED,
            step_type=AI_STEP_TYPE,
            step_version=AI_STEP_VERSION,
            idempotency="key",
            retry=retry.to_json(),
        )
        if carried:
            step.data = {"usage": carried}
        error: s.StepError | None = None
        try:
            value = spec.evaluate_input(flow.run.context())
            step.input = spec.task_input(flow.definition.models, value, tokens, cost)
        except Exception as exc:  # an evaluation error is a definition bug, not a crash
            error = s.StepError("ExpressionError", str(exc))
        flow.schedule_step(step, 0.0, error, kind=NodeKind.AI)

    def timer_fired(self, flow: Flow, step: s.StepState, spec: AiSpec, event: TimerFired) -> None:
        """The review's deadline passed undecided: the step is dead-lettered."""
        decide(
            flow,
            ApprovalDecided(
                event.node_id,
                False,
                "system:deadline",
                "no decision by the review's deadline",
                event.time,
                by_timeout=True,
            ),
        )

    def cancel(self, flow: Flow, step: s.StepState) -> None:
        if "review" in step.data:
            flow.transition.close_approvals.append(
                CloseApproval(step.node_id, step.idempotency_key, "WITHDRAWN", "", flow.time)
            )
            flow.transition.cancel_timers.append((step.node_id, TimerKind.AI_REVIEW_DEADLINE))
            return
        cancel_attempt(flow, step)

    def describe_wait(self, step: s.StepState) -> str:
        review = step.data.get("review", {})
        who = ", ".join(review.get("approvers") or ["anyone"])
        return f"review {review.get('title')!r} of AI node {step.node_id!r} by {who}"


def run_usage(run: s.RunState) -> tuple[int, float]:
    """Tokens and cost the run's AI calls have used so far, over every AI step."""
    tokens, cost = 0, 0.0
    for step in run.steps.values():
        usage = step.data.get("usage") if step.kind == NodeKind.AI else None
        if usage:
            tokens += int(usage.get("tokens") or 0)
            cost += float(usage.get("cost") or 0.0)
    return tokens, cost


def refresh_budget(run: s.RunState, step: s.StepState) -> dict[str, Any] | None:
    """Bring the budget in an AI step's task input up to the run's usage (for its next
    attempt); the new budget, or None when the input has none."""
    if not isinstance(step.input, dict) or not isinstance(step.input.get("budget"), dict):
        return None
    tokens, cost = run_usage(run)
    budget = {**step.input["budget"], "used_tokens": tokens, "used_cost": cost}
    step.input = {**step.input, "budget": budget}
    return budget


def _add_usage(step: s.StepState, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    before = step.data.get("usage", {})
    step.data["usage"] = {
        "tokens": int(before.get("tokens", 0)) + int(usage.get("tokens") or 0),
        "cost": float(before.get("cost", 0.0)) + float(usage.get("cost") or 0.0),
    }


def completed(flow: Flow, step: s.StepState, event: AttemptCompleted) -> None:
    """The connector's result: the node's output is its "output", history keeps it all."""
    result = event.output if isinstance(event.output, dict) else {}
    output = result.get("output")
    flow.record(
        "ATTEMPT_COMPLETED",
        step.node_id,
        step.attempt,
        principal=event.worker_id or "system",
        output=output,
        ai=event.output,
    )
    _add_usage(step, result.get("usage"))
    flow.transition.remove.append(step.task_id)
    flow.run.completions += 1
    step.complete(event.time, output, flow.run.completions)
    flow.completed(step)


def failure_details(error: dict[str, Any]) -> dict[str, Any] | None:
    """The parsed details of a `surefoot.ai` failure (calls, last reply, errors, usage):
    one JSON object, the whole details or their last line (a worker SDK sends a failure's
    traceback first)."""
    text = str(error.get("details") or "").rstrip("\n")
    last = text.rsplit("\n", 1)[-1].strip()
    if not last.startswith("{"):
        return None
    try:
        details = json.loads(last)
    except ValueError:
        return None
    return details if isinstance(details, dict) else None


def failed(step: s.StepState, error: dict[str, Any]) -> dict[str, Any]:
    """What an AI attempt's failure adds to its history event; counts its usage."""
    details = failure_details(error)
    if details is None:
        return {}
    _add_usage(step, details.get("usage"))
    return {"ai": details}


def reviews(flow: Flow, step: s.StepState, error: dict[str, Any]) -> bool:
    """Open the node's human review instead of dead-lettering, when it has one and the
    model's replies never validated; False when the step is dead-lettered as usual."""
    spec = flow.definition.nodes[step.node_id]
    assert isinstance(spec, AiSpec)
    if spec.final != FINAL_REVIEW or spec.review is None or error.get("type") != OUTPUT_INVALID:
        return False
    if step.data.get("reviewed"):
        return False  # the review already said no: this is its dead letter
    details = failure_details(error) or {}
    shown = {
        "reply": details.get("last_reply", ""),
        "errors": details.get("errors", []),
        "input": step.input.get("input") if isinstance(step.input, dict) else None,
    }
    review = spec.review
    deadline = flow.time + review.timeout_seconds if review.timeout_seconds else None
    step.status = s.STEP_WAITING
    step.last_error = error
    step.data["review"] = {
        "title": review.title,
        "approvers": list(review.approvers),
        "shown": shown,
        "deadline": deadline,
    }
    request_approval(
        flow,
        step,
        review.title,
        review.approvers,
        shown,
        deadline,
        TimerKind.AI_REVIEW_DEADLINE,
    )
    return True


def decide(flow: Flow, event: ApprovalDecided) -> None:
    """A reviewer decided: approved with an output, the node completes with it; rejected (or
    the deadline passed), the step is dead-lettered with the error that asked for review.

    Raises:
        NotWaiting: the review is not pending.
        OutputRefused: an approval without an output, or one the node's schema refuses.
    """
    step = waiting_step(flow, event.node_id, NodeKind.AI)
    if step is None:
        raise NotWaiting(f"approval {event.node_id!r} is not pending")
    spec = flow.definition.nodes[event.node_id]
    assert isinstance(spec, AiSpec)
    if event.approve:
        _check_output(spec, event)
    review = step.data.pop("review", {})
    decision = "approved" if event.approve else "rejected"
    ai = {"source": "human_review", "decided_by": event.principal, "output": event.output}
    flow.record(
        "APPROVAL_DECIDED",
        event.node_id,
        step.attempt,
        principal=event.principal,
        decision=decision,
        comment=event.comment,
        title=review.get("title"),
        shown=review.get("shown"),
        by_timeout=event.by_timeout,
        **({"content_hash": event.content_hash} if event.content_hash else {}),
        **({"ai": ai} if event.approve else {}),
    )
    flow.transition.close_approvals.append(
        CloseApproval(
            event.node_id,
            step.idempotency_key,
            decision.upper(),
            event.principal,
            event.time,
            event.comment,
            event.by_timeout,
        )
    )
    flow.transition.cancel_timers.append((event.node_id, TimerKind.AI_REVIEW_DEADLINE))
    if event.approve:
        flow.run.completions += 1
        step.complete(event.time, event.output, flow.run.completions)
        flow.completed(step)
        return
    step.data["reviewed"] = True
    error = step.last_error or s.StepError(OUTPUT_INVALID, "rejected in review").to_json()
    flow.dead_letter(step, error, f"review {decision} by {event.principal}")


def _check_output(spec: AiSpec, event: ApprovalDecided) -> None:
    if not event.has_output:
        raise OutputRefused(
            "output",
            f"approving the review of AI node {spec.node_id!r} needs the output it should "
            "have (JSON matching its output schema)",
        )
    validator = jsonschema.Draft202012Validator(spec.output_schema())
    errors = sorted(validator.iter_errors(event.output), key=jsonschema.exceptions.relevance)
    if errors:
        where = "/" + "/".join(str(part) for part in errors[0].absolute_path)
        raise OutputRefused(
            "output",
            f"does not match the output schema of AI node {spec.node_id!r} at {where}: "
            f"{errors[0].message}",
        )
