"""Acceptance: a crash between the payment provider charging and the checkpoint costs a
retry, never a second charge.

`e2e-charge` (support/payment_steps.py) is declared `idempotency="key"` and sends the task's
idempotency key to a fake provider (support/payment_api.py), which charges once per key. The
provider holds its answer to the first request, so the test crashes a process exactly while
the customer is charged and the step has not heard back: first the worker, then the control
plane. The attempt is run again with the same key, the provider replays the charge, and the
customer is charged once although the provider was asked twice.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import AuthControlPlane
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.payment_api import FakePaymentApi
from tests.support.processes import StartWorker
from tests.support.runs import (
    Event,
    Stub,
    assert_history_well_formed,
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)

PAYMENT_STEPS = Path(__file__).resolve().parents[1] / "support" / "payment_steps.py"
CUSTOMER = "cus_acme"
AMOUNT = 4200


def checkout(name: str) -> definition_pb2.WorkflowDefinition:
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "charge",
                    "task": {"step_type": "e2e-charge", "step_version": "1", "input": "input"},
                }
            ],
        }
    )


def start_checkout(stub: Stub, name: str, api: FakePaymentApi) -> str:
    register(stub, checkout(name))
    return start_run(stub, name, {"api": api.url, "customer": CUSTOMER, "amount": AMOUNT})


def charge_requested(api: FakePaymentApi, count: int) -> None:
    assert_eventually(
        lambda: len(api.requests()) >= count,
        message=f"the payment API received {count} charge request(s)",
    )


def assert_charged_once(api: FakePaymentApi, run_id: str, output: object) -> None:
    """One charge for the step's key, asked for twice: the retry happened and was harmless."""
    key = f"{run_id}:charge"
    requests = api.requests()
    assert [(r.idempotency_key, r.replayed) for r in requests] == [(key, False), (key, True)]
    (charge,) = api.charges()
    assert api.charged(CUSTOMER) == AMOUNT
    assert {r.charge_id for r in requests} == {charge["id"]}
    assert output == {"charge_id": charge["id"], "amount": AMOUNT, "attempt": 2}


def assert_same_key_and_input(execution_log: ExecutionLog, run_id: str) -> list[int]:
    """The attempts that ran, their pids; both had the same input and idempotency key."""
    started = execution_log.started(run_id, "charge")
    assert [e.attempt for e in started] == [1, 2], started
    first, second = started
    assert first.idempotency_key == second.idempotency_key == f"{run_id}:charge"
    assert first.input == second.input
    return [e.pid for e in started]


def test_worker_killed_after_the_charge_and_before_the_checkpoint(
    control_plane: AuthControlPlane,
    worker: StartWorker,
    execution_log: ExecutionLog,
    payment_api: FakePaymentApi,
) -> None:
    stub = control_plane.stub
    payment_api.hold_answers(1)
    first = worker(PAYMENT_STEPS)
    run_id = start_checkout(stub, "checkout-worker-crash", payment_api)
    charge_requested(payment_api, 1)  # charged; the answer is held, nothing checkpointed

    first.kill()
    second = worker(PAYMENT_STEPS)
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert_charged_once(payment_api, run_id, payload_value(run.output))
    assert assert_same_key_and_input(execution_log, run_id) == [first.pid, second.pid]
    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert attempt_outcomes(events) == [
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_LOST", 1),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_COMPLETED", 2),
    ]


def test_control_plane_killed_after_the_charge_and_before_the_checkpoint(
    control_plane: AuthControlPlane,
    worker: StartWorker,
    execution_log: ExecutionLog,
    payment_api: FakePaymentApi,
) -> None:
    payment_api.hold_answers(1)
    the_worker = worker(PAYMENT_STEPS)
    run_id = start_checkout(control_plane.stub, "checkout-server-crash", payment_api)
    charge_requested(payment_api, 1)

    control_plane.kill()
    # The worker is alive and would extend the lease of attempt 1 as soon as it reconnects:
    # then attempt 1 rightly goes on and nothing is retried. This test is about the other
    # case, a control plane down for longer than the lease, whose attempt is given up.
    lease_expired_in_database(control_plane.database_url, run_id)
    control_plane.restart()
    stub = control_plane.stub
    # Attempt 2 runs on the reconnected worker while attempt 1 still waits for its answer.
    charge_requested(payment_api, 2)
    run = wait_for_status(stub, run_id, "COMPLETED")
    payment_api.release()  # attempt 1 hears back at last, and reports too late

    # Who came first after the restart decides what the late result meets, and both are
    # right: the worker naming its earlier session took attempt 1's expired lease over (its
    # stream holds it: the result is recorded and ignored), or the reaper gave the lease up
    # before (no stream holds it: the result is refused and writes nothing).
    refusal = f"refused a report for task {run_id}:charge:1"

    def late_result_met() -> list[Event] | bool:
        ignored = events_of(history(stub, run_id), "RESULT_IGNORED", "charge")
        return ignored or refusal in the_worker.process.stderr()

    assert_eventually(late_result_met, message="attempt 1's late result was reported")
    late = events_of(history(stub, run_id), "RESULT_IGNORED", "charge")
    assert [e.attempt for e in late] in ([1], [])
    assert_charged_once(payment_api, run_id, payload_value(run.output))
    assert assert_same_key_and_input(execution_log, run_id) == [the_worker.pid] * 2
    events = history(stub, run_id)
    assert_history_well_formed(events)
    assert attempt_outcomes(events) == [
        ("ATTEMPT_STARTED", 1),
        ("ATTEMPT_LOST", 1),
        ("ATTEMPT_STARTED", 2),
        ("ATTEMPT_COMPLETED", 2),
        *[("RESULT_IGNORED", e.attempt) for e in late],
    ]
    (lost,) = events_of(events, "ATTEMPT_LOST", "charge")
    assert "lease expired" in lost.data["reason"], lost
    # The run's output is attempt 2's, and attempt 1's result did not move it again.
    assert [e.type for e in events].count("RUN_COMPLETED") == 1


def attempt_outcomes(events: list[Event]) -> list[tuple[str, int]]:
    kinds = {"ATTEMPT_STARTED", "ATTEMPT_LOST", "ATTEMPT_COMPLETED", "RESULT_IGNORED"}
    return [(e.type, e.attempt) for e in events if e.type in kinds]


def lease_expired_in_database(database_url: str, run_id: str) -> None:
    """Waits until the lease the killed control plane granted for the run has run out.

    With no control plane running, only the database can say so.
    """
    conninfo = database_url.replace("postgresql+psycopg://", "postgresql://")

    def expired() -> bool:
        with psycopg.connect(conninfo, connect_timeout=5) as connection:
            row = connection.execute(
                "SELECT lease_expires_at <= now() FROM tasks "
                "WHERE run_id = %s AND status = 'leased'",
                (run_id,),
            ).fetchone()
        assert row is not None, f"no leased task of run {run_id}"
        return bool(row[0])

    assert_eventually(expired, message=f"the lease of run {run_id}'s attempt ran out")
