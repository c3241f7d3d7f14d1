"""Each transition of the run state machine, one example at a time."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from surefoot.v1 import definition_pb2

from controlplane.engine import state as s
from controlplane.engine.definition import StepDeclaration
from controlplane.engine.machine import RunClosed, apply
from controlplane.engine.retry import RetryPolicy
from tests.engine.workflow_builders import (
    NO_STEP_TYPES,
    T0,
    DrivenRun,
    cancel,
    catalog_of,
    completed,
    error,
    event_types,
    failed,
    lost,
    retry_policy,
    start,
    task_node,
    workflow,
)

ORDER = {"order_id": "o-17", "amount": 42}


def orders_workflow(**charge_options: Any) -> definition_pb2.WorkflowDefinition:
    """reserve -> charge -> ship; `charge_options` configure the charge node."""
    return workflow(
        task_node("reserve", next="charge", step_type="reserve-stock"),
        task_node(
            "charge",
            next="ship",
            step_type="charge-card",
            input="{order: input.order_id, amount: input.amount}",
            **charge_options,
        ),
        task_node(
            "ship",
            step_type="ship-parcel",
            input="{order: input.order_id, reservation: steps.reserve.output.reservation}",
        ),
    )


def charging() -> DrivenRun:
    """An orders run whose reserve step has completed: charge attempt 1 is scheduled."""
    driven = start(
        orders_workflow(retry=retry_policy(max_attempts=3, non_retryable=("Fraud",))), ORDER
    )
    driven.send(completed("reserve", 1, {"reservation": "r-9"}, T0 + 1))
    return driven


# -- start ------------------------------------------------------------------------------------


def test_start_records_the_run_and_schedules_attempt_1_of_the_first_node() -> None:
    driven = start(orders_workflow(), ORDER)

    run, transition = driven.run, driven.started
    assert run.status == s.RUNNING
    assert run.current_node == "reserve"
    assert run.created_at == run.updated_at == T0
    assert event_types(transition) == ["RUN_STARTED", "STEP_SCHEDULED"]
    assert transition.events[0].principal == "alice"
    assert transition.events[0].data["request_id"] == "req-1"
    [task] = transition.schedule
    assert task.task_id == "run-1:reserve:1"
    assert task.idempotency_key == "run-1:reserve"
    assert (task.node_id, task.attempt, task.step_type) == ("reserve", 1, "reserve-stock")
    # An empty input expression passes the run input.
    assert task.input == ORDER
    assert task.available_at == T0
    step = run.steps["reserve"]
    assert (step.status, step.attempt, step.task_id) == (s.SCHEDULED, 1, "run-1:reserve:1")


def test_start_honours_an_explicit_start_node() -> None:
    proto = workflow(task_node("a"), task_node("b", next="a"), start="b")
    driven = start(proto, {})
    assert driven.run.current_node == "b"
    assert [t.node_id for t in driven.started.schedule] == ["b"]


# -- completion ----------------------------------------------------------------------------------


def test_completing_a_step_checkpoints_its_output_and_schedules_the_next_node() -> None:
    driven = start(orders_workflow(), ORDER)

    transition = driven.send(completed("reserve", 1, {"reservation": "r-9"}, T0 + 1))

    assert event_types(transition) == ["ATTEMPT_COMPLETED", "STEP_SCHEDULED"]
    assert transition.remove == ["run-1:reserve:1"]
    [task] = transition.schedule
    assert task.task_id == "run-1:charge:1"
    # The next node's input is its expression over the run context.
    assert task.input == {"order": "o-17", "amount": 42}
    reserve = driven.run.steps["reserve"]
    assert reserve.status == s.STEP_COMPLETED
    assert reserve.output == {"reservation": "r-9"}
    assert reserve.completed_at == T0 + 1
    assert reserve.completion_index == 1
    assert driven.run.current_node == "charge"
    assert driven.run.status == s.RUNNING


def test_input_expressions_read_the_run_input_and_earlier_outputs() -> None:
    driven = charging()
    transition = driven.send(completed("charge", 1, {"charge_id": "ch-1"}, T0 + 2))
    [task] = transition.schedule
    assert task.input == {"order": "o-17", "reservation": "r-9"}
    assert driven.run.context() == {
        "input": ORDER,
        "steps": {
            "reserve": {"output": {"reservation": "r-9"}},
            "charge": {"output": {"charge_id": "ch-1"}},
        },
    }


def test_completing_the_last_step_completes_the_run_with_its_output() -> None:
    driven = charging()
    driven.send(completed("charge", 1, {"charge_id": "ch-1"}, T0 + 2))

    transition = driven.send(completed("ship", 1, {"tracking": "T-1"}, T0 + 3))

    assert event_types(transition) == ["ATTEMPT_COMPLETED", "RUN_COMPLETED"]
    assert transition.events[-1].data == {"output": {"tracking": "T-1"}}
    assert transition.schedule == []
    assert transition.remove == ["run-1:ship:1"]
    run = driven.run
    assert run.status == s.COMPLETED
    assert run.output == {"tracking": "T-1"}
    assert run.closed_at == T0 + 3
    assert [run.steps[n].completion_index for n in ("reserve", "charge", "ship")] == [1, 2, 3]


def test_the_outcome_records_no_start_the_lease_recorded_it_and_the_attempt_keeps_its_time() -> (
    None
):
    """ATTEMPT_STARTED is written when the task is leased (store.run_batch), before the
    outcome in seq and in time; the outcome only keeps the start time in the attempt."""
    driven = start(orders_workflow(), ORDER)
    transition = driven.send(
        completed("reserve", 1, {}, T0 + 5, worker_id="host:1", started_at=T0 + 2)
    )
    assert event_types(transition)[:1] == ["ATTEMPT_COMPLETED"]
    assert "ATTEMPT_STARTED" not in event_types(transition)
    [attempt] = driven.run.steps["reserve"].finished_attempts
    assert (attempt["started_at"], attempt["ended_at"]) == (T0 + 2, T0 + 5)


# -- failure and retry -------------------------------------------------------------------------


def test_a_retryable_failure_schedules_the_next_attempt_after_the_backoff_delay() -> None:
    driven = charging()
    driven.uniform = lambda: 0.5  # the middle of the jitter range: exactly the base delay

    transition = driven.send(failed("charge", 1, error("Timeout"), T0 + 10))

    assert event_types(transition) == ["ATTEMPT_FAILED", "RETRY_SCHEDULED"]
    assert transition.remove == ["run-1:charge:1"]
    retry = transition.events[1]
    assert retry.attempt == 2
    assert retry.data["delay_seconds"] == 1.0
    assert retry.data["due_at"] == T0 + 11
    [task] = transition.schedule
    assert task.task_id == "run-1:charge:2"
    assert task.available_at == T0 + 11
    # The same step again: same idempotency key, same input.
    assert task.idempotency_key == "run-1:charge"
    assert task.input == {"order": "o-17", "amount": 42}
    step = driven.run.steps["charge"]
    assert (step.status, step.attempt, step.next_attempt_at) == (s.RETRY_WAIT, 2, T0 + 11)
    assert step.last_error == error("Timeout")
    assert driven.run.status == s.RUNNING


def test_a_retry_after_longer_than_the_backoff_delays_the_next_attempt_that_long() -> None:
    driven = charging()
    driven.uniform = lambda: 0.5
    asked = error("HttpStatus503") | {"retry_after": 30.0}

    transition = driven.send(failed("charge", 1, asked, T0 + 10))

    retry = transition.events[1]
    assert retry.data["delay_seconds"] == 30.0
    assert "retry after 30 s" in retry.data["reason"]
    [task] = transition.schedule
    assert task.available_at == T0 + 40


def test_a_retry_after_shorter_than_the_backoff_keeps_the_backoff() -> None:
    driven = charging()
    driven.uniform = lambda: 0.5

    transition = driven.send(failed("charge", 1, error("Busy") | {"retry_after": 0.2}, T0 + 10))

    assert transition.events[1].data["delay_seconds"] == 1.0


def test_the_backoff_grows_geometrically_and_jitter_comes_from_the_injected_source() -> None:
    driven = start(
        workflow(
            task_node("a", retry=retry_policy(max_attempts=5, initial=2, backoff=3, jitter=0.5))
        )
    )
    draws = iter([0.0, 0.5, 0.999999])
    driven.uniform = lambda: next(draws)

    delays = []
    for attempt in (1, 2, 3):
        transition = driven.send(failed("a", attempt, error(), T0 + attempt * 100))
        delays.append(transition.events[-1].data["delay_seconds"])

    # base 2, 6, 18; drawn at the bottom, middle and top of base * (1 ± 0.5).
    assert delays == pytest.approx([1.0, 6.0, 27.0], abs=1e-4)


def test_the_delay_is_capped_at_max_interval() -> None:
    policy = RetryPolicy(initial_interval=10, backoff_coefficient=10, max_interval=150, jitter=0)
    assert [policy.base_delay(n) for n in (1, 2, 3, 4)] == [10, 100, 150, 150]


def test_the_backoff_keeps_growing_after_many_attempts() -> None:
    """delay = min(max_interval, initial * coefficient^(n-1)) for every n (DESIGN.md). The
    exponent must not be capped below the point where the cap on the delay takes over."""
    policy = RetryPolicy(
        max_attempts=200, initial_interval=1, backoff_coefficient=1.01, max_interval=3600
    )
    assert policy.base_delay(100) == pytest.approx(1.01**99)


def test_exhausted_retries_dead_letter_the_step_and_the_run_needs_attention() -> None:
    driven = charging()
    driven.send(failed("charge", 1, error("Timeout"), T0 + 10))
    driven.send(failed("charge", 2, error("Timeout"), T0 + 20))

    transition = driven.send(failed("charge", 3, error("Declined"), T0 + 30))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED"]
    assert transition.schedule == []
    assert transition.remove == ["run-1:charge:3"]
    dead = transition.events[1]
    assert dead.data["attempts"] == 3
    assert dead.data["reason"] == "gave up after 3 attempts"
    run = driven.run
    assert run.status == s.NEEDS_ATTENTION
    assert run.last_error == error("Declined")
    assert run.waiting_since == T0 + 30
    assert "charge" in (run.waiting_for or "")
    assert run.steps["charge"].status == s.DEAD_LETTERED
    assert run.steps["charge"].last_error == error("Declined")


@pytest.mark.parametrize(
    "err",
    [error("Fraud"), error("Declined", retryable=False)],
    ids=["type in non_retryable_error_types", "retryable false"],
)
def test_a_non_retryable_error_dead_letters_at_once(err: dict[str, object]) -> None:
    driven = charging()

    transition = driven.send(failed("charge", 1, err, T0 + 10))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED"]
    assert transition.events[1].data["reason"] == "non-retryable error"
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.steps["charge"].attempt == 1


def test_on_failure_fail_ends_the_run_as_failed() -> None:
    driven = start(orders_workflow(on_failure="fail", retry=retry_policy(max_attempts=1)), ORDER)
    driven.send(completed("reserve", 1, {"reservation": "r-9"}, T0 + 1))

    transition = driven.send(failed("charge", 1, error("Declined"), T0 + 2))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED", "RUN_FAILED"]
    assert transition.events[-1].data == {"error": error("Declined")}
    assert driven.run.status == s.FAILED
    assert driven.run.closed_at == T0 + 2
    assert driven.run.last_error == error("Declined")


def test_on_failure_next_routes_a_dead_letter_to_the_fallback_node() -> None:
    proto = workflow(
        task_node(
            "charge", next="ship", on_failure_next="refund", retry=retry_policy(max_attempts=1)
        ),
        task_node("ship"),
        task_node("refund", input="input.order_id"),
    )
    driven = start(proto, ORDER)

    transition = driven.send(failed("charge", 1, error("Declined"), T0 + 1))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED", "STEP_SCHEDULED"]
    [task] = transition.schedule
    assert (task.task_id, task.input) == ("run-1:refund:1", "o-17")
    assert driven.run.status == s.RUNNING
    assert driven.run.current_node == "refund"
    assert driven.run.steps["charge"].status == s.DEAD_LETTERED
    assert "ship" not in driven.run.steps


def test_a_loop_back_is_a_new_operation_with_its_own_key_and_continued_attempts() -> None:
    proto = workflow(
        task_node("charge", next="ship", retry=retry_policy(max_attempts=3)),
        task_node("ship", on_failure_next="charge", retry=retry_policy(max_attempts=1)),
    )
    driven = start(proto, ORDER)
    driven.send(completed("charge", 1, {"charge_id": "ch-1"}, T0 + 1))

    transition = driven.send(failed("ship", 1, error("NoCarrier"), T0 + 2))

    # Entry 2 of charge: a new key (a downstream dedupe must not return entry 1's result),
    # attempt numbers continue so that entry 1's late result cannot be mistaken for it.
    [task] = transition.schedule
    assert (task.task_id, task.attempt) == ("run-1:charge#2:2", 2)
    assert task.idempotency_key == "run-1:charge#2"
    assert s.parse_task_id(task.task_id) == ("run-1", "charge", 2)
    assert driven.run.steps["charge"].status == s.SCHEDULED
    stale = driven.send(completed("charge", 1, {"charge_id": "late"}, T0 + 3))
    assert event_types(stale) == ["RESULT_IGNORED"]

    # A retry within the entry keeps the entry's key.
    retry = driven.send(failed("charge", 2, error("Timeout"), T0 + 4))
    [again] = retry.schedule
    assert (again.task_id, again.idempotency_key) == ("run-1:charge#2:3", "run-1:charge#2")


# -- lost attempts ------------------------------------------------------------------------------


def test_a_lost_attempt_is_handed_out_again_at_once_with_the_same_key_and_input() -> None:
    driven = charging()

    transition = driven.send(lost("charge", 1, T0 + 40, reason="lease expired"))

    assert event_types(transition) == ["ATTEMPT_LOST", "RETRY_SCHEDULED"]
    assert transition.events[1].data["delay_seconds"] == 0
    assert transition.remove == ["run-1:charge:1"]
    [task] = transition.schedule
    assert task.task_id == "run-1:charge:2"
    assert task.available_at == T0 + 40
    assert task.idempotency_key == "run-1:charge"
    assert task.input == {"order": "o-17", "amount": 42}
    step = driven.run.steps["charge"]
    assert (step.status, step.attempt, step.next_attempt_at) == (s.SCHEDULED, 2, None)
    assert step.last_error is not None and step.last_error["type"] == "AttemptLost"


def test_lost_attempts_count_towards_max_attempts() -> None:
    driven = charging()
    driven.send(lost("charge", 1, T0 + 10))
    driven.send(failed("charge", 2, error(), T0 + 20))

    transition = driven.send(lost("charge", 3, T0 + 30))

    assert event_types(transition) == ["ATTEMPT_LOST", "STEP_DEAD_LETTERED"]
    assert driven.run.status == s.NEEDS_ATTENTION


def test_a_lost_step_with_idempotency_none_goes_to_a_human_instead_of_running_again() -> None:
    driven = start(orders_workflow(idempotency="none"), ORDER)
    driven.send(completed("reserve", 1, {"reservation": "r-9"}, T0 + 1))

    transition = driven.send(lost("charge", 1, T0 + 2))

    assert event_types(transition) == ["ATTEMPT_LOST", "STEP_DEAD_LETTERED"]
    assert transition.schedule == []
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.last_error is not None
    assert driven.run.last_error["retryable"] is False


# -- results that are no longer current (law 3) ----------------------------------------------


def test_a_result_for_a_superseded_attempt_is_recorded_and_ignored() -> None:
    driven = charging()
    driven.send(lost("charge", 1, T0 + 10))
    before = copy.deepcopy(driven.run)

    transition = driven.send(completed("charge", 1, {"charge_id": "late"}, T0 + 11))

    assert event_types(transition) == ["RESULT_IGNORED"]
    ignored = transition.events[0]
    assert (ignored.node_id, ignored.attempt) == ("charge", 1)
    assert ignored.data["reason"] == "attempt 1 is superseded by attempt 2"
    assert ignored.data["result"] == {"outcome": "COMPLETED", "output": {"charge_id": "late"}}
    assert (transition.schedule, transition.remove, transition.cancel) == ([], [], [])
    assert driven.run.steps == before.steps
    assert driven.run.status == s.RUNNING


def test_a_duplicate_completion_does_not_advance_the_run_twice() -> None:
    driven = charging()
    before = copy.deepcopy(driven.run)

    transition = driven.send(completed("reserve", 1, {"reservation": "other"}, T0 + 5))

    assert event_types(transition) == ["RESULT_IGNORED"]
    assert transition.events[0].data["reason"] == "step is COMPLETED"
    assert driven.run.steps == before.steps


def test_a_result_for_a_node_without_a_step_is_ignored() -> None:
    driven = charging()
    transition = driven.send(completed("ship", 1, {}, T0 + 5))
    assert event_types(transition) == ["RESULT_IGNORED"]
    assert transition.events[0].data["reason"] == "run has no step 'ship'"


def test_a_result_after_the_run_ended_is_ignored() -> None:
    driven = charging()
    driven.send(cancel(T0 + 5))
    transition = driven.send(completed("charge", 1, {}, T0 + 6))
    assert event_types(transition) == ["RESULT_IGNORED"]
    assert transition.events[0].data["reason"] == "run is CANCELLED"


# -- cancellation -----------------------------------------------------------------------------


def test_cancel_stops_the_open_attempt_and_ends_the_run() -> None:
    driven = charging()

    transition = driven.send(cancel(T0 + 5, principal="alice", reason="ordered twice"))

    # The open step may be recorded as cancelled; the run's ending comes last.
    assert event_types(transition)[-1] == "RUN_CANCELLED"
    assert set(event_types(transition)[:-1]) <= {"STEP_CANCELLED"}
    event = transition.events[-1]
    assert (event.principal, event.data) == ("alice", {"reason": "ordered twice"})
    assert transition.remove == ["run-1:charge:1"]
    assert transition.cancel == ["run-1:charge:1"]
    assert transition.schedule == []
    run = driven.run
    assert (run.status, run.closed_at) == (s.CANCELLED, T0 + 5)
    assert run.steps["charge"].status == s.STEP_CANCELLED
    # What completed stays completed.
    assert run.steps["reserve"].status == s.STEP_COMPLETED


def test_cancel_of_a_run_waiting_for_an_operator() -> None:
    driven = charging()
    driven.send(failed("charge", 1, error("Fraud"), T0 + 2))
    assert driven.run.status == s.NEEDS_ATTENTION

    transition = driven.send(cancel(T0 + 3))

    assert event_types(transition) == ["RUN_CANCELLED"]
    assert (transition.remove, transition.cancel) == ([], [])
    assert driven.run.status == s.CANCELLED
    assert driven.run.waiting_for is None


@pytest.mark.parametrize("ending", ["completed", "cancelled"])
def test_cancelling_a_closed_run_raises_run_closed_and_changes_nothing(ending: str) -> None:
    driven = start(workflow(task_node("only")), {})
    if ending == "completed":
        driven.send(completed("only", 1, {"done": True}, T0 + 1))
    else:
        driven.send(cancel(T0 + 1))
    before = copy.deepcopy(driven.run)

    with pytest.raises(RunClosed):
        apply(driven.run, cancel(T0 + 2), driven.definition, NO_STEP_TYPES, lambda: 0.5)

    assert driven.run == before


# -- policies from the step catalog ------------------------------------------------------------


def test_a_step_type_registration_supplies_idempotency_and_retry() -> None:
    catalog = catalog_of(
        {"charge-card": StepDeclaration("natural", RetryPolicy(max_attempts=1, jitter=0))}
    )
    driven = start(workflow(task_node("charge", idempotency="")), {}, catalog=catalog)
    assert driven.run.steps["charge"].idempotency == "natural"

    transition = driven.send(failed("charge", 1, error(), T0 + 1))

    assert event_types(transition) == ["ATTEMPT_FAILED", "STEP_DEAD_LETTERED"]


def test_the_node_declaration_overrides_the_step_type_registration() -> None:
    catalog = catalog_of({"charge-card": StepDeclaration("none", RetryPolicy(max_attempts=1))})
    proto = workflow(task_node("charge", idempotency="key", retry=retry_policy(max_attempts=2)))
    driven = start(proto, {}, catalog=catalog)

    transition = driven.send(lost("charge", 1, T0 + 1))

    assert event_types(transition) == ["ATTEMPT_LOST", "RETRY_SCHEDULED"]
    assert driven.run.steps["charge"].idempotency == "key"


def test_a_step_type_without_any_idempotency_declaration_is_never_run() -> None:
    driven = start(workflow(task_node("charge", idempotency="")), {})

    assert event_types(driven.started) == ["RUN_STARTED", "STEP_SCHEDULED", "STEP_DEAD_LETTERED"]
    assert driven.started.schedule == []
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.last_error is not None
    assert driven.run.last_error["type"] == "StepNotDeclared"


def test_an_expression_that_fails_at_run_time_dead_letters_the_step() -> None:
    # length() of a number is a JMESPath type error: only the run input can reveal it.
    driven = start(workflow(task_node("count", input="length(input.items)")), {"items": 3})

    assert driven.started.schedule == []
    assert driven.run.status == s.NEEDS_ATTENTION
    assert driven.run.last_error is not None
    assert driven.run.last_error["type"] == "ExpressionError"
