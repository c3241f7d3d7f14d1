"""The outcome records of non-idempotent calls, on SQLite and PostgreSQL.

A call recorded COMPLETED is never made again; a STARTED record (an attempt that may have
reached the service and died) sends the step to a human; a call that certainly had no
effect clears its record so that the retry may call.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from surefoot_connectors.call import ConnectorFailure
from surefoot_worker import NonRetryableError

from controlplane.store.connector_outcomes import COMPLETED, STARTED
from tests.connectors.connector_calls import StepsFor, run_step
from tests.connectors.connector_servers import FakeApi, Reply
from tests.connectors.outcome_plane import OutcomeLedger


def _send_counting(calls: list[int], outcome: Any) -> Any:
    def send() -> Any:
        calls.append(1)
        return outcome

    return send


def test_a_completed_call_is_replayed_not_repeated(outcomes: OutcomeLedger) -> None:
    calls: list[int] = []
    first = outcomes.run_once(
        idempotency_key="run-1:mail",
        connector="surefoot.smtp",
        attempt=1,
        send=_send_counting(calls, {"message_id": "<m1>"}),
    )
    again = outcomes.run_once(
        idempotency_key="run-1:mail",
        connector="surefoot.smtp",
        attempt=2,
        send=_send_counting(calls, {"message_id": "<m2>"}),
    )
    assert first == again == {"message_id": "<m1>"}
    assert calls == [1]
    recorded = outcomes.read("run-1:mail")
    assert recorded is not None and recorded.state == COMPLETED and recorded.attempt == 1


def test_a_started_record_means_outcome_unknown(outcomes: OutcomeLedger) -> None:
    def dies_mid_call() -> Any:
        raise ConnectorFailure(
            "read timed out", type="HttpReadTimeout", retryable=True, may_have_acted=True
        )

    # The attempt that may have acted says so at once, and leaves its record STARTED ...
    with pytest.raises(ConnectorFailure) as raised:
        outcomes.run_once(
            idempotency_key="run-2:post",
            connector="surefoot.webhook",
            attempt=1,
            send=dies_mid_call,
        )
    assert raised.value.type == "OutcomeUnknown" and not raised.value.retryable
    assert "read timed out" in raised.value.message
    recorded = outcomes.read("run-2:post")
    assert recorded is not None and recorded.state == STARTED

    # ... so a later attempt does not call, and asks a human.
    calls: list[int] = []
    with pytest.raises(ConnectorFailure) as raised:
        outcomes.run_once(
            idempotency_key="run-2:post",
            connector="surefoot.webhook",
            attempt=2,
            send=_send_counting(calls, {}),
        )
    assert raised.value.type == "OutcomeUnknown" and not raised.value.retryable
    assert "attempt 1 of this step started calling" in raised.value.message
    # The way out it names is one an operator has: a retry that forgets the record.
    assert "forget_connector_outcome" in raised.value.message
    assert calls == []


def test_a_definite_failure_clears_the_record_for_the_retry(outcomes: OutcomeLedger) -> None:
    def refused() -> Any:
        raise ConnectorFailure(
            "connection refused", type="HttpConnectError", retryable=True, may_have_acted=False
        )

    with pytest.raises(ConnectorFailure) as raised:
        outcomes.run_once(
            idempotency_key="run-3:post", connector="surefoot.webhook", attempt=1, send=refused
        )
    assert raised.value.type == "HttpConnectError"
    assert outcomes.read("run-3:post") is None
    calls: list[int] = []
    assert outcomes.run_once(
        idempotency_key="run-3:post",
        connector="surefoot.webhook",
        attempt=2,
        send=_send_counting(calls, {"ok": 1}),
    ) == {"ok": 1}
    assert calls == [1]


def test_racing_attempts_make_one_call(outcomes: OutcomeLedger) -> None:
    """Two attempts of one key at once (a lost lease's attempt still running): the primary
    key lets exactly one of them call; the other does not."""
    inside = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def slow_send() -> Any:
        calls.append(1)
        inside.set()
        release.wait(30)
        return {"sent": True}

    def attempt(number: int) -> Any:
        try:
            return outcomes.run_once(
                idempotency_key="run-4:post",
                connector="surefoot.webhook",
                attempt=number,
                send=slow_send,
            )
        except ConnectorFailure as failure:
            return failure.type

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(attempt, 1)
        assert inside.wait(30)
        second = pool.submit(attempt, 2)
        assert second.result(30) == "OutcomeUnknown"
        release.set()
        assert first.result(30) == {"sent": True}
    assert calls == [1]


def test_an_operator_can_forget_a_record(outcomes: OutcomeLedger) -> None:
    outcomes.run_once(
        idempotency_key="run-5:x", connector="surefoot.smtp", attempt=1, send=lambda: {}
    )
    assert outcomes.forget("run-5:x") is True
    assert outcomes.read("run-5:x") is None
    assert outcomes.forget("run-5:x") is False


def test_the_webhook_posts_once_per_key_and_a_started_record_dead_letters(
    fake_api: FakeApi, steps_with: StepsFor, outcomes: OutcomeLedger
) -> None:
    """Through the connector step, on each database: a retry of a posted message replays
    the first answer, and a post whose previous attempt may have happened is not made."""
    fake_api.script("/hook", Reply(200, "ok"))
    webhook = steps_with(store=outcomes)["surefoot.webhook"]
    message = {"url": fake_api.url("/hook"), "text": "deployed"}

    first = run_step(webhook, message, key="run-6:notify", attempt=1)
    again = run_step(webhook, message, key="run-6:notify", attempt=2)
    assert first == again == {"status": 200, "body": "ok"}
    assert len(fake_api.received("/hook")) == 1

    # A record left STARTED by an attempt whose worker died mid-call.
    with pytest.raises(ConnectorFailure):
        outcomes.run_once(
            idempotency_key="run-7:notify",
            connector="surefoot.webhook",
            attempt=1,
            send=_raises_may_have_acted,
        )
    with pytest.raises(NonRetryableError) as raised:
        run_step(webhook, message, key="run-7:notify", attempt=2)
    assert raised.value.type == "OutcomeUnknown"
    assert "run-7:notify" in raised.value.message
    assert len(fake_api.received("/hook")) == 1


def _raises_may_have_acted() -> Any:
    raise ConnectorFailure("connection lost", type="X", retryable=True, may_have_acted=True)
