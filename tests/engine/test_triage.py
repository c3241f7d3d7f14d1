"""An operator's decisions on a dead letter: retry (as it was or with edited input), skip."""

from __future__ import annotations

import pytest

from controlplane.engine import state as s
from controlplane.engine.events import AbandonRequested, StepRetryRequested, StepSkipRequested
from controlplane.engine.triage import NotDeadLettered
from tests.engine.workflow_builders import (
    T0,
    DrivenRun,
    completed,
    error,
    event_types,
    failed,
    retry_policy,
    start,
    task_node,
    workflow,
)

DECLINED = error("CardDeclined", retryable=False)


def dead_charge() -> DrivenRun:
    """reserve -> charge -> ship; charge gave up at once: the run needs attention."""
    driven = start(
        workflow(
            task_node("reserve", next="charge", step_type="reserve-stock"),
            task_node("charge", next="ship", input="input", retry=retry_policy(max_attempts=2)),
            task_node("ship", step_type="ship-parcel", input="steps.charge.output"),
        ),
        {"amount": 42},
    )
    driven.send(completed("reserve", 1, {"reservation": "r-1"}, T0 + 1))
    driven.send(failed("charge", 1, DECLINED, T0 + 2))
    assert driven.run.status == s.NEEDS_ATTENTION and driven.run.attention == "charge"
    return driven


def test_a_retry_runs_the_step_again_with_the_same_key_and_a_fresh_budget() -> None:
    driven = dead_charge()

    transition = driven.send(StepRetryRequested("charge", "alice", "card replaced", T0 + 60))

    assert event_types(transition) == ["STEP_RETRIED"]
    retried = transition.events[0]
    assert (retried.principal, retried.attempt) == ("alice", 2)
    assert retried.data == {
        "comment": "card replaced",
        "error": DECLINED,
        "input": {"amount": 42},
        "input_edited": False,
        "forget_connector_outcome": False,
    }
    assert transition.forget_outcomes == []
    [task] = transition.schedule
    assert (task.task_id, task.idempotency_key) == ("run-1:charge:2", "run-1:charge")
    assert task.available_at == T0 + 60
    run = driven.run
    assert (run.status, run.attention, run.waiting_for, run.last_error) == (
        s.RUNNING,
        None,
        None,
        None,
    )
    # max_attempts 2 counts again from the retry: one transient failure is retried.
    again = driven.send(failed("charge", 2, error("Timeout"), T0 + 61))
    assert event_types(again) == ["ATTEMPT_FAILED", "RETRY_SCHEDULED"]
    done = driven.send(completed("charge", 3, {"charge_id": "ch-1"}, T0 + 70))
    [ship] = done.schedule
    assert (ship.node_id, ship.input) == ("ship", {"charge_id": "ch-1"})


def test_a_retry_with_edited_input_sends_the_new_input() -> None:
    driven = dead_charge()

    transition = driven.send(
        StepRetryRequested("charge", "bob", "", T0 + 5, input={"amount": 40}, edit_input=True)
    )

    assert transition.events[0].data["input_edited"] is True
    assert transition.events[0].data["input"] == {"amount": 40}
    assert transition.schedule[0].input == {"amount": 40}


def test_a_skip_completes_the_step_with_the_given_output_and_goes_on() -> None:
    driven = dead_charge()

    transition = driven.send(
        StepSkipRequested("charge", "carol", "charged by phone", T0 + 9, output={"charge_id": "p"})
    )

    assert event_types(transition) == ["STEP_SKIPPED", "STEP_SCHEDULED"]
    assert transition.events[0].principal == "carol"
    assert transition.events[0].data["output"] == {"charge_id": "p"}
    assert transition.events[0].data["error"] == DECLINED
    [ship] = transition.schedule
    assert (ship.node_id, ship.input) == ("ship", {"charge_id": "p"})
    assert driven.run.steps["charge"].status == s.STEP_COMPLETED
    assert driven.run.status == s.RUNNING and driven.run.attention is None


@pytest.mark.parametrize("node", ["reserve", "ship", "nope"])
def test_only_the_dead_letter_can_be_retried_or_skipped(node: str) -> None:
    driven = dead_charge()
    before = driven.run

    with pytest.raises(NotDeadLettered):
        driven.send(StepRetryRequested(node, "alice", "", T0 + 5))
    with pytest.raises(NotDeadLettered):
        driven.send(StepSkipRequested(node, "alice", "", T0 + 5, output={}))

    assert driven.run is before


def test_a_run_that_does_not_need_attention_has_nothing_to_retry() -> None:
    driven = dead_charge()
    driven.send(StepRetryRequested("charge", "alice", "", T0 + 5))

    with pytest.raises(NotDeadLettered, match="RUNNING"):
        driven.send(StepRetryRequested("charge", "alice", "", T0 + 6))


def test_a_retry_may_forget_a_connector_outcome_record() -> None:
    driven = dead_charge()

    transition = driven.send(
        StepRetryRequested("charge", "alice", "checked: never sent", T0 + 5, forget_outcome=True)
    )

    assert transition.forget_outcomes == ["run-1:charge"]
    assert transition.events[0].data["forget_connector_outcome"] is True


def test_retries_keep_the_nodes_timeout() -> None:
    driven = start(
        workflow(task_node("charge", timeout_seconds=30, retry=retry_policy(max_attempts=2)))
    )
    assert driven.started.schedule[0].timeout_seconds == 30

    automatic = driven.send(failed("charge", 1, error("Timeout"), T0 + 1))
    driven.send(failed("charge", 2, DECLINED, T0 + 5))
    by_operator = driven.send(StepRetryRequested("charge", "alice", "", T0 + 9))

    assert automatic.schedule[0].timeout_seconds == 30
    assert by_operator.schedule[0].timeout_seconds == 30


def test_an_abandonment_without_a_reason_says_who_and_nothing_more() -> None:
    driven = dead_charge()

    driven.send(AbandonRequested("", "carol", T0 + 9))

    assert driven.run.last_error is not None
    assert driven.run.last_error["message"] == "abandoned by carol"
