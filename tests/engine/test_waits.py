"""The non-task node kinds, one transition at a time: approvals, sleeps, event waits,
switches, parallel joins, compensation and cancelling what a run waits on."""

from __future__ import annotations

import pytest

from controlplane.engine import state as s
from controlplane.engine.events import (
    ApprovalDecided,
    CloseApproval,
    EventReceived,
    StepRetryRequested,
    StepSkipRequested,
    TimerCommand,
    TimerFired,
)
from controlplane.engine.machine import NotWaiting
from tests.engine.workflow_builders import (
    T0,
    DrivenRun,
    approval_node,
    cancel,
    compensated,
    completed,
    error,
    event_types,
    failed,
    parallel_node,
    sleep_node,
    start,
    switch_node,
    task_node,
    wait_node,
    workflow,
)

ORDER = {"order": "o-1", "amount": 42}


def approving(**options: object) -> DrivenRun:
    """reserve (compensated by release) -> ask -> ship."""
    driven = start(
        workflow(
            compensated(task_node("reserve", next="ask"), "release"),
            approval_node("ask", next="ship", **options),  # type: ignore[arg-type]
            task_node("ship"),
            task_node("apologise"),
        ),
        ORDER,
    )
    driven.send(completed("reserve", 1, {"reservation": "r-1"}, T0 + 1))
    assert driven.run.status == s.WAITING
    return driven


def decided(node: str, approve: bool, time: float, by: str = "bob") -> ApprovalDecided:
    return ApprovalDecided(node, approve, by, "looked fine" if approve else "no", time)


def test_an_approval_waits_for_a_person_and_approving_moves_on() -> None:
    driven = approving()
    assert driven.run.waiting_for == "approval 'approve ask' of 'ask' by bob"

    transition = driven.send(decided("ask", True, T0 + 5))

    assert event_types(transition) == ["APPROVAL_DECIDED", "STEP_SCHEDULED"]
    assert transition.events[0].principal == "bob"
    assert transition.close_approvals[0].status == "APPROVED"
    assert ("ask", "approval_deadline") in transition.cancel_timers
    assert driven.run.steps["ask"].output == {
        "approved": True,
        "decided_by": "bob",
        "comment": "looked fine",
    }
    assert driven.run.current_node == "ship"
    with pytest.raises(NotWaiting):
        driven.send(decided("ask", False, T0 + 6))


def test_a_rejection_without_a_route_compensates_what_completed() -> None:
    driven = approving()

    transition = driven.send(decided("ask", False, T0 + 5))

    assert event_types(transition) == ["APPROVAL_DECIDED", "COMPENSATION_STARTED", "STEP_SCHEDULED"]
    assert driven.run.status == s.COMPENSATING
    assert driven.run.last_error == {
        "type": "Rejected",
        "message": "'approve ask' rejected by bob: no",
        "retryable": False,
        "details": "",
    }
    [task] = transition.schedule
    assert (task.node_id, task.step_type) == ("reserve.compensation", "release")
    assert task.input == {"input": ORDER, "output": {"reservation": "r-1"}}

    ending = driven.send(completed("reserve.compensation", 1, None, T0 + 6))
    assert event_types(ending) == ["ATTEMPT_COMPLETED", "RUN_COMPENSATED"]
    assert driven.run.steps["reserve"].status == s.COMPENSATED_STEP
    assert driven.run.status == s.COMPENSATED


def test_a_rejection_with_a_route_takes_it() -> None:
    driven = approving(rejected_next="apologise")
    transition = driven.send(decided("ask", False, T0 + 5))
    assert event_types(transition) == ["APPROVAL_DECIDED", "STEP_SCHEDULED"]
    assert driven.run.current_node == "apologise"


@pytest.mark.parametrize(("action", "approved"), [("approve", True), ("reject", False)])
def test_a_deadline_decides_by_default(action: str, approved: bool) -> None:
    driven = approving(timeout_seconds=60, on_timeout=action)
    assert driven.run.steps["ask"].data["deadline"] == T0 + 61

    transition = driven.send(TimerFired("ask", "approval_deadline", T0 + 61))

    decision = transition.events[0]
    assert (decision.type, decision.principal) == ("APPROVAL_DECIDED", "system:deadline")
    assert decision.data["by_timeout"] is True
    assert driven.run.steps["ask"].output["approved"] is approved
    assert driven.run.status == (s.RUNNING if approved else s.COMPENSATING)


def test_a_deadline_escalates_once_then_rejects() -> None:
    driven = approving(timeout_seconds=60, on_timeout="escalate", escalate_to=("carol",))

    first = driven.send(TimerFired("ask", "approval_deadline", T0 + 61))

    assert event_types(first) == ["WAIT_TIMED_OUT"]
    assert first.events[0].data == {"action": "escalated", "escalate_to": ["carol"]}
    assert first.escalations[0].escalate_to == ("carol",)
    assert driven.run.waiting_for == "approval 'approve ask' of 'ask' by bob, carol"

    second = driven.send(TimerFired("ask", "approval_deadline", T0 + 200))
    assert event_types(second)[0] == "APPROVAL_DECIDED"
    assert driven.run.steps["ask"].output["approved"] is False


def test_a_sleep_wakes_on_its_timer_and_ignores_others() -> None:
    driven = start(workflow(sleep_node("nap", next="ship", seconds=30), task_node("ship")), ORDER)
    assert driven.started.timers == [TimerCommand("nap", "sleep", T0 + 30)]
    assert driven.run.waiting_for == "sleep of 'nap' until 2026-09-21T14:13:50+00:00"

    assert driven.send(TimerFired("nap", "event_timeout", T0 + 30)).events == []
    assert driven.run.status == s.WAITING

    transition = driven.send(TimerFired("nap", "sleep", T0 + 30))
    assert event_types(transition) == ["SLEEP_FIRED", "STEP_SCHEDULED"]
    assert driven.send(TimerFired("nap", "sleep", T0 + 31)).events == []


def test_a_sleep_until_a_time_in_the_past_wakes_at_once() -> None:
    driven = start(
        workflow(sleep_node("nap", until="input.when")), {"when": "2001-01-01T00:00:00Z"}
    )
    assert driven.started.timers == [TimerCommand("nap", "sleep", T0)]


def waiting_for_payment(**options: object) -> DrivenRun:
    return start(
        workflow(
            wait_node("paid", next="ship", **options),  # type: ignore[arg-type]
            task_node("ship", input="steps.paid.output"),
            task_node("remind"),
        ),
        ORDER,
    )


def test_an_event_completes_the_wait_and_records_who_sent_it() -> None:
    driven = waiting_for_payment()
    wait = driven.started.open_waits[0]
    assert (wait.event_name, wait.correlation_key) == ("paid", "o-1")

    transition = driven.send(
        EventReceived("paid", "paid", "o-1", {"amount": 42}, "ev-1", T0 + 3, principal="carol")
    )

    received = transition.events[0]
    assert (received.type, received.principal) == ("EVENT_RECEIVED", "carol")
    assert received.data["event_id"] == "ev-1"
    assert transition.close_waits == ["paid"]
    assert transition.schedule[0].input == {"amount": 42}
    with pytest.raises(NotWaiting):
        driven.send(EventReceived("paid", "paid", "o-1", {}, "ev-2", T0 + 4))


def test_a_wait_timeout_takes_the_timeout_route() -> None:
    driven = waiting_for_payment(timeout_seconds=10, timeout_next="remind")
    transition = driven.send(TimerFired("paid", "event_timeout", T0 + 10))
    assert event_types(transition) == ["WAIT_TIMED_OUT", "STEP_SCHEDULED"]
    assert driven.run.steps["paid"].output == {"timed_out": True}
    assert driven.run.current_node == "remind"


def test_a_wait_timeout_without_a_route_dead_letters_and_an_operator_can_wait_again() -> None:
    driven = waiting_for_payment(timeout_seconds=10)
    transition = driven.send(TimerFired("paid", "event_timeout", T0 + 10))
    assert event_types(transition) == ["WAIT_TIMED_OUT", "STEP_DEAD_LETTERED"]
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.last_error == {
        "type": "Timeout",
        "message": "no event 'paid' within 10.0 s",
        "retryable": False,
        "details": "",
    }

    again = driven.send(StepRetryRequested("paid", "alice", "wait more", T0 + 20))
    assert event_types(again) == ["STEP_RETRIED", "EVENT_WAIT_STARTED"]
    assert again.timers == [TimerCommand("paid", "event_timeout", T0 + 30)]
    assert driven.run.status == s.WAITING
    assert driven.run.steps["paid"].idempotency_key == "run-1:paid#2"


def test_an_operator_can_skip_a_timed_out_wait() -> None:
    driven = waiting_for_payment(timeout_seconds=10)
    driven.send(TimerFired("paid", "event_timeout", T0 + 10))
    transition = driven.send(
        StepSkipRequested("paid", "alice", "paid by phone", T0 + 20, output={"amount": 1})
    )
    assert event_types(transition) == ["STEP_SKIPPED", "STEP_SCHEDULED"]
    assert transition.schedule[0].input == {"amount": 1}


@pytest.mark.parametrize(
    ("path", "taken"), [("big", "review"), ("small", "ship"), ("other", "ship")]
)
def test_a_switch_takes_the_first_case_that_holds_else_the_default(path: str, taken: str) -> None:
    driven = start(
        workflow(
            switch_node("route", [("input.path == 'big'", "review")], default_next="ship"),
            task_node("review"),
            task_node("ship"),
            start="route",
        ),
        {"path": path},
    )
    assert event_types(driven.started) == ["RUN_STARTED", "BRANCH_TAKEN", "STEP_SCHEDULED"]
    assert driven.run.current_node == taken
    assert driven.run.steps["route"].status == s.STEP_COMPLETED


def fanning_out() -> DrivenRun:
    return start(
        workflow(
            compensated(task_node("reserve", next="fan"), "release"),
            parallel_node("fan", ["left", "right"], next="ship"),
            task_node("left"),
            sleep_node("right", seconds=5),
            task_node("ship"),
        ),
        ORDER,
    )


def test_a_parallel_node_joins_when_every_branch_ended() -> None:
    driven = fanning_out()
    driven.send(completed("reserve", 1, {}, T0 + 1))
    assert driven.run.steps["fan"].status == s.STEP_RUNNING
    assert driven.run.status == s.RUNNING

    assert event_types(driven.send(TimerFired("right", "sleep", T0 + 6))) == ["SLEEP_FIRED"]
    transition = driven.send(completed("left", 1, {"packed": True}, T0 + 7))

    assert event_types(transition) == ["ATTEMPT_COMPLETED", "PARALLEL_JOINED", "STEP_SCHEDULED"]
    assert driven.run.steps["fan"].output == {"left": {"packed": True}}
    assert driven.run.current_node == "ship"


def test_a_failing_branch_cancels_the_others_and_compensates() -> None:
    driven = fanning_out()
    driven.send(completed("reserve", 1, {}, T0 + 1))

    transition = driven.send(failed("left", 1, error("Broken", retryable=False), T0 + 2))

    kinds = event_types(transition)
    assert kinds[:3] == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED", "STEP_CANCELLED"]
    assert kinds[-2:] == ["COMPENSATION_STARTED", "STEP_SCHEDULED"]
    assert ("right", "sleep") in transition.cancel_timers
    assert driven.run.steps["fan"].status == s.STEP_CANCELLED
    assert driven.run.status == s.COMPENSATING


def test_cancel_withdraws_approvals_and_closes_waits_and_timers() -> None:
    driven = start(
        workflow(
            parallel_node("fan", ["ask", "paid"]),
            approval_node("ask", timeout_seconds=60, on_timeout="reject"),
            wait_node("paid", timeout_seconds=60),
        ),
        ORDER,
    )
    assert driven.run.status == s.WAITING

    transition = driven.send(cancel(T0 + 5))

    assert event_types(transition) == ["STEP_CANCELLED"] * 3 + ["RUN_CANCELLED"]
    [withdrawn] = transition.close_approvals
    assert withdrawn == CloseApproval("ask", "run-1:ask", "WITHDRAWN", "", T0 + 5)
    assert transition.close_waits == ["paid"]
    assert sorted(transition.cancel_timers) == [
        ("ask", "approval_deadline"),
        ("paid", "event_timeout"),
    ]
    assert driven.run.status == s.CANCELLED
