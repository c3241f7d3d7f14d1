"""Acceptance: GetRun and `surefoot runs why` say what a waiting run waits for.

An approval (who may decide, since when, until when), a sleep (due when), an event (name,
key, since) and a dead letter (its error, since when), each read against what the run's
history recorded; a run waiting on two branches names both; an ended run waits for nothing.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_blocked_on.blocked_support import (
    CLOCK_TOLERANCE,
    blocked_on,
    seconds,
    why,
    why_json,
)
from tests.support.processes import ControlPlane, StartWorker, run_cli
from tests.support.runs import (
    events_of,
    get_run,
    history,
    register,
    start_run,
    wait_for_status,
)
from tests.support.waits import pending_approvals, send_event
from tests.support.workflows import QUICK_RETRY, single_step, task_node

HOUR = 3600.0


def approval_node(node_id: str, next_node: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": node_id,
        "approval": {
            "title": "Refund customer",
            "approvers": ["group:managers", "carol"],
            "show": {"amount": "input.amount"},
            "timeout_seconds": HOUR,
            "on_timeout": "reject",
        },
    }
    if next_node:
        node["next"] = next_node
    return node


def test_approval_says_who_may_decide_since_when_and_the_deadline(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    register(
        stub,
        definition_from_dict(
            {"name": "refund", "version": "1", "nodes": [approval_node("manager")]}
        ),
    )
    run_id = start_run(stub, "refund", {"amount": 120})
    run = blocked_on(stub, run_id, "APPROVAL")

    (approval,) = [a for a in pending_approvals(stub) if a.run_id == run_id]
    (blocker,) = run.blocked_on
    assert blocker.node_id == "manager"
    assert blocker.WhichOneof("detail") == "approval"
    assert blocker.approval.approval_id == approval.id
    assert blocker.approval.title == "Refund customer"
    assert list(blocker.approval.approvers) == ["group:managers", "carol"]
    assert not blocker.approval.escalated
    assert blocker.since == approval.requested_at
    assert blocker.until == approval.deadline
    (requested,) = events_of(history(stub, run_id), "APPROVAL_REQUESTED")
    assert seconds(blocker.until) == pytest.approx(requested.time + HOUR, abs=CLOCK_TOLERANCE)
    assert f"(id {approval.id}) by group:managers, carol" in blocker.description
    assert "deadline" in blocker.description

    (line,) = why(control_plane, run_id)
    assert line == f"approval: {blocker.description}"
    document = why_json(control_plane, run_id)
    assert document["status"] == "WAITING"
    (shown,) = document["blocked_on"]
    assert shown["kind"] == "BLOCKED_ON_KIND_APPROVAL"
    assert shown["approval"]["approval_id"] == approval.id

    # `runs show` prints the same line among the run's fields.
    shown_run = run_cli("runs", "show", run_id, "--address", control_plane.address)
    assert shown_run.returncode == 0, shown_run.stderr
    assert f"approval: {blocker.description}" in shown_run.stdout


def test_sleep_says_when_it_is_due(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(
        stub,
        definition_from_dict(
            {"name": "nap", "version": "1", "nodes": [{"id": "nap", "sleep": {"seconds": HOUR}}]}
        ),
    )
    run_id = start_run(stub, "nap", {})
    run = blocked_on(stub, run_id, "TIMER")

    (started,) = events_of(history(stub, run_id), "SLEEP_STARTED")
    (blocker,) = run.blocked_on
    assert blocker.node_id == "nap"
    assert seconds(blocker.until) == pytest.approx(started.data["due_at"], abs=CLOCK_TOLERANCE)
    assert seconds(blocker.since) == pytest.approx(started.time, abs=CLOCK_TOLERANCE)
    assert blocker.description.startswith("sleep at 'nap' until ")
    assert why(control_plane, run_id) == [f"timer: {blocker.description}"]


def test_event_wait_names_the_event_and_its_key(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(
        stub,
        definition_from_dict(
            {
                "name": "await-payment",
                "version": "1",
                "nodes": [
                    {
                        "id": "payment",
                        "wait_event": {
                            "event_name": "payment-received",
                            "correlation_key": "input.order",
                            "timeout_seconds": HOUR,
                            "timeout_next": "give-up",
                        },
                    },
                    task_node("give-up", None, "{trail: [input.order]}"),
                ],
            }
        ),
    )
    run_id = start_run(stub, "await-payment", {"order": "A-17"})
    run = blocked_on(stub, run_id, "EVENT")

    (started,) = events_of(history(stub, run_id), "EVENT_WAIT_STARTED")
    (blocker,) = run.blocked_on
    assert blocker.event.event_name == "payment-received"
    assert blocker.event.correlation_key == "A-17"
    assert seconds(blocker.since) == pytest.approx(started.time, abs=CLOCK_TOLERANCE)
    assert seconds(blocker.until) == pytest.approx(started.data["timeout_at"], abs=CLOCK_TOLERANCE)
    assert "event 'payment-received' with key 'A-17' at 'payment'" in blocker.description
    assert why(control_plane, run_id) == [f"event: {blocker.description}"]

    # Once the event arrives nothing blocks the run any more: it has ended.
    send_event(stub, "payment-received", "A-17", {"paid": True})
    ended = wait_for_status(stub, run_id, "COMPLETED")
    assert list(ended.blocked_on) == []
    assert why(control_plane, run_id) == [f"run {run_id} is COMPLETED: it has ended"]


def test_run_waiting_on_two_branches_names_both(control_plane: ControlPlane) -> None:
    stub = control_plane.stub
    register(
        stub,
        definition_from_dict(
            {
                "name": "two-waits",
                "version": "1",
                "nodes": [
                    {"id": "fan", "parallel": {"branches": ["manager", "nap"], "join": "all"}},
                    approval_node("manager"),
                    {"id": "nap", "sleep": {"seconds": HOUR}},
                ],
            }
        ),
    )
    run_id = start_run(stub, "two-waits", {"amount": 5})
    run = blocked_on(stub, run_id, "APPROVAL", "TIMER")
    assert [b.node_id for b in run.blocked_on] == ["manager", "nap"]
    lines = why(control_plane, run_id)
    assert [line.split(":", 1)[0] for line in lines] == ["approval", "timer"]


def test_dead_letter_says_its_error_and_since_when(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, single_step("declines", QUICK_RETRY))
    worker()
    run_id = start_run(stub, "declines", {"non_retryable": True})
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    run = blocked_on(stub, run_id, "DEAD_LETTER")

    (dead,) = events_of(history(stub, run_id), "STEP_DEAD_LETTERED")
    (blocker,) = run.blocked_on
    assert blocker.node_id == "step"
    assert blocker.dead_letter.error.type == "CardDeclined"
    assert blocker.dead_letter.error.message == "step: card 4242 declined"
    assert blocker.dead_letter.attempts == 1
    assert blocker.dead_letter.step_type == "e2e-work"
    assert not blocker.dead_letter.compensation
    assert seconds(blocker.since) == pytest.approx(dead.time, abs=CLOCK_TOLERANCE)
    assert "CardDeclined: step: card 4242 declined" in blocker.description
    assert why(control_plane, run_id) == [f"dead_letter: {blocker.description}"]


def test_why_of_an_unknown_run_is_refused(control_plane: ControlPlane) -> None:
    done = run_cli("runs", "why", "no-such-run", "--address", control_plane.address)
    assert done.returncode != 0
    assert "no-such-run" in done.stderr and "not found" in done.stderr, done.stderr
    with pytest.raises(grpc.RpcError) as caught:
        get_run(control_plane.stub, "no-such-run")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert run_pb2.BLOCKED_ON_KIND_PAUSED  # reserved for PauseRun, kept in the API
