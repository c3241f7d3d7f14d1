"""Acceptance: external events reach the run they are for, exactly once, whenever they come.

An event sent before its run reaches the wait is kept and consumed when the run gets there;
one sent while the run waits is delivered at once. Each goes to the run whose correlation
key it carries and to no other, a retried SendEvent (same event id) delivers nothing new,
and a wait with a timeout takes its timeout path when nothing comes.
"""

from __future__ import annotations

import time
from typing import Any

from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.waits import send_event
from tests.support.workflows import shaped_by, task_node

EVENT = "payment-received"
ON_TIME = 1.5


def await_payment(name: str, **wait: Any) -> Any:
    """prepare (a step shaped by input.prepare) → a wait for EVENT keyed by input.order,
    whose payload is the run's output; `wait` adds fields (a timeout leads to give-up)."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                task_node("prepare", "payment", shaped_by("`[]`", "prepare")),
                {
                    "id": "payment",
                    "wait_event": {"event_name": EVENT, "correlation_key": "input.order", **wait},
                },
                *([task_node("give-up", None, "{trail: [input.order]}")] if wait else []),
            ],
        }
    )


def test_events_before_and_after_the_wait_are_each_delivered_once_to_their_run(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, await_payment("await-payment"))
    worker()
    # A is still preparing when its payment comes; B is already waiting; C waits for nothing.
    early = start_run(stub, "await-payment", {"order": "A", "prepare": {"sleep_seconds": 3}})
    late = start_run(stub, "await-payment", {"order": "B"})
    bystander = start_run(stub, "await-payment", {"order": "C"})
    assert_eventually(lambda: execution_log.started(early, "prepare"), message="A prepares")
    for run_id in (late, bystander):
        wait_for_status(stub, run_id, "WAITING")

    paid_a = {"order": "A", "amount": 10}
    sent_early = send_event(stub, EVENT, "A", paid_a, event_id="pay-A")
    sent_early_at = time.time()
    paid_b = {"order": "B", "amount": 20}
    sent_late = send_event(stub, EVENT, "B", paid_b, event_id="pay-B")

    assert (sent_early.stored, list(sent_early.delivered_to)) == (True, [])
    assert (sent_late.stored, list(sent_late.delivered_to)) == (False, [late])
    assert (sent_early.event_id, sent_late.event_id) == ("pay-A", "pay-B")
    for run_id, paid, event_id in ((early, paid_a, "pay-A"), (late, paid_b, "pay-B")):
        run = wait_for_status(stub, run_id, "COMPLETED")
        assert payload_value(run.output) == paid
        events = history(stub, run_id)
        assert_history_well_formed(events)
        (received,) = events_of(events, "EVENT_RECEIVED", "payment")
        assert received.data["payload"] == paid and received.data["event_id"] == event_id
        assert received.data["correlation_key"] == paid["order"]
    # A's event waited for A, which reached its wait only after it was sent.
    (wait_started,) = events_of(history(stub, early), "EVENT_WAIT_STARTED", "payment")
    assert wait_started.time > sent_early_at
    assert status_name(get_run(stub, bystander).status) == "WAITING"
    settled = {run_id: history(stub, run_id) for run_id in (early, late, bystander)}

    # A SendEvent retried with the same id changes nothing.
    for key, paid in (("A", paid_a), ("B", paid_b)):
        assert send_event(stub, EVENT, key, paid, event_id=f"pay-{key}").event_id == f"pay-{key}"
    # A's event was consumed: a new run keyed A waits for a new one, which it alone receives.
    second_a = start_run(stub, "await-payment", {"order": "A"})
    wait_for_status(stub, second_a, "WAITING")
    assert {run_id: history(stub, run_id) for run_id in settled} == settled
    assert not events_of(history(stub, second_a), "EVENT_RECEIVED")
    refund = {"order": "A", "amount": -10}
    assert list(send_event(stub, EVENT, "A", refund, event_id="refund-A").delivered_to) == [
        second_a
    ]
    assert payload_value(wait_for_status(stub, second_a, "COMPLETED").output) == refund
    assert {run_id: history(stub, run_id) for run_id in settled} == settled


def test_wait_with_a_timeout_takes_its_timeout_path(
    control_plane: ControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, await_payment("await-or-give-up", timeout_seconds=2, timeout_next="give-up"))
    worker()

    run_id = start_run(stub, "await-or-give-up", {"order": "Z"})
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output)["trail"] == ["Z", "give-up"]
    assert [e.node_id for e in execution_log.started(run_id)] == ["prepare", "give-up"]
    events = history(stub, run_id)
    assert_history_well_formed(events)
    (started,) = events_of(events, "EVENT_WAIT_STARTED", "payment")
    (timed_out,) = events_of(events, "WAIT_TIMED_OUT", "payment")
    assert started.time + 2 <= timed_out.time + 0.002 <= started.time + 2 + ON_TIME
    assert timed_out.data["action"] == "timeout"
    assert not events_of(events, "EVENT_RECEIVED")
    # The wait is closed: a late payment finds nobody waiting and is kept, not delivered.
    late = send_event(stub, EVENT, "Z", {"order": "Z"}, event_id="too-late")
    assert (late.stored, list(late.delivered_to)) == (True, [])
    assert history(stub, run_id) == events
