"""The AI node in the pure engine: its task, its output, its budget, its human review."""

from __future__ import annotations

import pytest

from controlplane.engine import state as s
from controlplane.engine.events import ApprovalDecided, StepRetryRequested, TimerFired
from controlplane.engine.nodes import NotWaiting, OutputRefused
from controlplane.engine.nodes.ai_spec import ai_task_input
from tests.ai_registration.ai_definitions import (
    CATEGORY_SCHEMA,
    ai_node,
    ai_result,
    ai_workflow,
    connection,
    default_fallback,
    model_fallback,
    output_invalid,
    review_fallback,
)
from tests.engine.workflow_builders import (
    T0,
    DrivenRun,
    approval_node,
    cancel,
    completed,
    error,
    event_types,
    failed,
    start,
    switch_node,
    task_node,
)

TICKET = {"ticket": {"text": "I was charged twice"}}
BILLING = {"category": "billing", "urgent": True}


def test_an_ai_node_schedules_a_surefoot_ai_task_with_its_task_input() -> None:
    proto = ai_workflow(
        ai_node(
            fallbacks=(
                model_fallback("spare"),
                default_fallback({"category": "other", "urgent": False}),
            )
        ),
        models=(connection("main", api_key_secret="OPENAI"), connection("spare", model="small")),
    )
    driven = start(proto, TICKET)

    [task] = driven.started.schedule
    assert (task.step_type, task.step_version) == ("surefoot.ai", "1")
    assert task.idempotency_key == "run-1:classify"
    assert task.input == ai_task_input(proto, "classify", TICKET["ticket"])
    assert task.input["input"] == {"text": "I was charged twice"}
    assert task.input["output_schema"] == CATEGORY_SCHEMA
    assert [m["name"] for m in task.input["models"]] == ["main", "spare"]
    assert task.input["models"][0] == {
        "name": "main",
        "base_url": "http://127.0.0.1:9/v1",
        "model": "gpt-test",
        "api_key_secret": "OPENAI",
        "structured_output": "json_schema",
        "input_price_per_million": 0.0,
        "output_price_per_million": 0.0,
        "headers": {},
    }
    assert task.input["default_output"] == {"category": "other", "urgent": False}
    assert task.input["max_repairs"] == 2
    assert task.input["timeout_seconds"] == 60.0
    assert task.input["budget"] == {
        "max_tokens": 0,
        "max_cost": 0.0,
        "used_tokens": 0,
        "used_cost": 0.0,
    }
    step = driven.run.steps["classify"]
    assert (step.kind, step.idempotency) == ("ai", "key")
    # Without a connector's declaration the node still retries as "surefoot.ai" does.
    assert step.retry["max_attempts"] == 5
    assert "AiOutputInvalid" in step.retry["non_retryable_error_types"]
    assert driven.started.events[-1].data["kind"] == "ai"


def test_a_task_input_has_no_default_output_unless_the_last_fallback_is_one() -> None:
    proto = ai_workflow(ai_node(fallbacks=(review_fallback(),)))
    assert "default_output" not in ai_task_input(proto, "classify", {})
    with pytest.raises(KeyError):
        ai_task_input(proto, "nope", {})


def test_the_node_output_is_the_results_output_and_history_keeps_the_whole_result() -> None:
    proto = ai_workflow(
        ai_node(next="route"),
        switch_node(
            "route",
            [("steps.classify.output.category == 'billing'", "refund")],
            default_next="other",
        ),
        task_node("refund", input="steps.classify.output"),
        task_node("other"),
    )
    driven = start(proto, TICKET)
    result = ai_result(BILLING, tokens=40, cost=0.002)

    transition = driven.send(completed("classify", 1, result, T0 + 1))

    done = transition.events[0]
    assert done.type == "ATTEMPT_COMPLETED"
    assert done.data["output"] == BILLING
    assert done.data["ai"] == result
    assert driven.run.steps["classify"].output == BILLING
    # The switch routed on the output and the next task reads it.
    [task] = transition.schedule
    assert (task.node_id, task.input) == ("refund", BILLING)


def test_the_next_ai_node_is_told_what_the_run_has_used_of_its_budget() -> None:
    proto = ai_workflow(
        ai_node("first", next="second", max_run_tokens=1000),
        ai_node("second", input="steps.first.output", max_run_tokens=1000, max_run_cost=1.0),
    )
    driven = start(proto, TICKET)
    driven.send(
        failed(
            "first",
            1,
            error("AiTimeout", retryable=True)
            | {"details": '{"usage": {"tokens": 5, "cost": 0.25}}'},
            T0 + 1,
        )
    )
    transition = driven.send(
        completed("first", 2, ai_result(BILLING, tokens=40, cost=0.5), T0 + 10)
    )

    [task] = transition.schedule
    assert task.input["budget"] == {
        "max_tokens": 1000,
        "max_cost": 1.0,
        "used_tokens": 45,
        "used_cost": 0.75,
    }


def test_a_retryable_failure_retries_and_keeps_the_parsed_details_in_history() -> None:
    driven = start(ai_workflow(ai_node()), TICKET)
    rate_limited = error("AiRateLimited") | {
        "retry_after": 7.0,
        "details": '{"calls": [{"status": "http_429"}]}',
    }

    transition = driven.send(failed("classify", 1, rate_limited, T0 + 1))

    assert event_types(transition) == ["ATTEMPT_FAILED", "RETRY_SCHEDULED"]
    assert transition.events[0].data["ai"] == {"calls": [{"status": "http_429"}]}
    [task] = transition.schedule
    assert task.available_at == T0 + 1 + 7.0


def test_invalid_output_without_a_review_dead_letters_with_the_last_reply() -> None:
    driven = start(ai_workflow(ai_node()), TICKET)

    transition = driven.send(failed("classify", 1, output_invalid('{"category": 3}'), T0 + 1))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED"]
    dead = transition.events[1]
    assert dead.data["ai"]["last_reply"] == '{"category": 3}'
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.steps["classify"].status == s.DEAD_LETTERED


def test_invalid_output_routes_to_the_failure_node_as_a_task_would() -> None:
    proto = ai_workflow(ai_node(on_failure_next="manual"), task_node("manual"))
    driven = start(proto, TICKET)

    transition = driven.send(failed("classify", 1, output_invalid(), T0 + 1))

    assert [t.node_id for t in transition.schedule] == ["manual"]


def reviewing(approvers: tuple[str, ...] = ("bob",), timeout_seconds: float = 0.0) -> DrivenRun:
    proto = ai_workflow(
        ai_node(next="done", fallbacks=(review_fallback(approvers, timeout_seconds),)),
        task_node("done", input="steps.classify.output"),
    )
    driven = start(proto, TICKET)
    driven.send(failed("classify", 1, output_invalid("nope", ("not JSON",)), T0 + 1))
    return driven


def test_invalid_output_with_a_review_waits_for_a_person() -> None:
    proto = ai_workflow(ai_node(fallbacks=(review_fallback(timeout_seconds=600),)))
    driven = start(proto, TICKET)

    transition = driven.send(failed("classify", 1, output_invalid("nope", ("not JSON",)), T0 + 1))

    assert event_types(transition) == ["ATTEMPT_FAILED", "APPROVAL_REQUESTED"]
    requested = transition.events[1].data
    assert requested["shown"] == {
        "reply": "nope",
        "errors": ["not JSON"],
        "input": {"text": "I was charged twice"},
    }
    [opened] = transition.open_approvals
    assert opened.approval_id == "run-1:classify"
    assert opened.title == "Review the reply of classify"
    assert opened.approvers == ("bob",)
    [timer] = transition.timers
    assert (timer.kind, timer.due_at) == ("ai_review_deadline", T0 + 601)
    assert driven.run.status == s.WAITING
    assert "review" in (driven.run.waiting_for or "")


def test_an_approved_review_completes_the_node_with_the_given_output() -> None:
    driven = reviewing()

    transition = driven.send(
        ApprovalDecided("classify", True, "bob", "fixed", T0 + 5, output=BILLING, has_output=True)
    )

    decided = transition.events[0]
    assert decided.type == "APPROVAL_DECIDED"
    assert decided.principal == "bob"
    assert decided.data["ai"] == {"source": "human_review", "decided_by": "bob", "output": BILLING}
    assert driven.run.steps["classify"].output == BILLING
    assert transition.close_approvals[0].status == "APPROVED"
    [task] = transition.schedule
    assert (task.node_id, task.input) == ("done", BILLING)


@pytest.mark.parametrize(
    ("output", "has_output", "words"),
    [
        (None, False, "needs the output"),
        ({"category": "refund", "urgent": True}, True, "/category"),
        ({"category": "bug"}, True, "urgent"),
    ],
)
def test_an_approval_without_a_fitting_output_is_refused_and_changes_nothing(
    output: object, has_output: bool, words: str
) -> None:
    driven = reviewing()
    before = driven.run

    with pytest.raises(OutputRefused) as refused:
        driven.send(
            ApprovalDecided(
                "classify", True, "bob", "", T0 + 5, output=output, has_output=has_output
            )
        )

    assert refused.value.field == "output"
    assert words in refused.value.message
    assert driven.run is before


def test_an_output_on_an_approval_node_is_refused() -> None:
    driven = start(ai_workflow(approval_node("ask"), models=()), {})
    with pytest.raises(OutputRefused):
        driven.send(ApprovalDecided("ask", True, "bob", "", T0 + 5, output={}, has_output=True))


def test_a_rejected_review_dead_letters_the_step_with_the_invalid_output_error() -> None:
    driven = reviewing()

    transition = driven.send(ApprovalDecided("classify", False, "bob", "garbage", T0 + 5))

    assert event_types(transition) == ["APPROVAL_DECIDED", "STEP_DEAD_LETTERED"]
    assert transition.events[1].data["error"]["type"] == "AiOutputInvalid"
    assert transition.events[1].data["ai"]["last_reply"] == "nope"
    assert driven.run.status == s.NEEDS_ATTENTION
    assert transition.close_approvals[0].status == "REJECTED"
    with pytest.raises(NotWaiting):
        driven.send(
            ApprovalDecided("classify", True, "bob", "", T0 + 6, output=BILLING, has_output=True)
        )


def test_a_review_past_its_deadline_dead_letters_the_step() -> None:
    driven = reviewing(timeout_seconds=60)

    transition = driven.send(TimerFired("classify", "ai_review_deadline", T0 + 62))

    assert event_types(transition) == ["APPROVAL_DECIDED", "STEP_DEAD_LETTERED"]
    assert transition.events[0].data["by_timeout"] is True
    assert driven.run.steps["classify"].status == s.DEAD_LETTERED


def test_cancelling_a_run_in_review_withdraws_the_review() -> None:
    driven = reviewing(timeout_seconds=60)

    transition = driven.send(cancel(T0 + 5))

    [withdrawn] = transition.close_approvals
    assert (withdrawn.approval_id, withdrawn.status) == ("run-1:classify", "WITHDRAWN")
    assert ("classify", "ai_review_deadline") in transition.cancel_timers
    assert transition.remove == []
    assert driven.run.status == s.CANCELLED


def test_cancelling_a_run_with_a_call_in_flight_cancels_its_task() -> None:
    driven = start(ai_workflow(ai_node()), TICKET)

    transition = driven.send(cancel(T0 + 5))

    assert transition.cancel == ["run-1:classify:1"]


def test_an_operators_retry_after_a_rejected_review_is_reviewed_again() -> None:
    driven = reviewing()
    driven.send(ApprovalDecided("classify", False, "bob", "garbage", T0 + 5))

    driven.send(StepRetryRequested("classify", "ops", "prompt fixed", T0 + 6))
    transition = driven.send(failed("classify", 2, output_invalid("still no"), T0 + 7))

    assert event_types(transition) == ["ATTEMPT_FAILED", "APPROVAL_REQUESTED"]
    assert transition.events[1].data["shown"]["reply"] == "still no"
    assert driven.run.status == s.WAITING


def test_a_retried_attempt_is_told_what_the_failed_ones_spent() -> None:
    driven = start(ai_workflow(ai_node(max_run_tokens=100)), TICKET)
    timed_out = error("AiTimeout") | {"details": '{"usage": {"tokens": 30, "cost": 0.5}}'}

    transition = driven.send(failed("classify", 1, timed_out, T0 + 1))

    [task] = transition.schedule
    assert task.input["budget"]["used_tokens"] == 30
    assert task.input["budget"]["used_cost"] == 0.5
    assert transition.events[-1].data["budget"] == task.input["budget"]
