"""StepContext: heartbeat details and cancellation across threads."""

from __future__ import annotations

import logging
import threading

import pytest
from surefoot_worker import StepContext


def _context() -> StepContext:
    return StepContext(
        task_id="t1",
        run_id="r1",
        node_id="charge",
        step_type="charge-card",
        step_version="1",
        attempt=2,
        idempotency_key="r1/charge",
        workflow_name="orders",
        namespace="default",
    )


def test_heartbeat_details_are_kept_until_taken_and_the_last_one_wins() -> None:
    ctx = _context()
    ctx.heartbeat()  # no details: nothing to send beyond the automatic lease heartbeat
    assert ctx._take_details() is None
    ctx.heartbeat({"done": 1})
    ctx.heartbeat({"done": 2})
    details = ctx._take_details()
    assert details is not None
    assert details.data == b'{"done":2}'
    assert ctx._take_details() is None


def test_heartbeat_from_another_thread() -> None:
    ctx = _context()
    thread = threading.Thread(target=ctx.heartbeat, args=({"rows": 10},))
    thread.start()
    thread.join()
    details = ctx._take_details()
    assert details is not None and details.data == b'{"rows":10}'


def test_heartbeat_refuses_details_that_are_not_json() -> None:
    with pytest.raises(TypeError):
        _context().heartbeat({"at": object()})


def test_cancellation_wakes_a_waiting_thread() -> None:
    ctx = _context()
    assert not ctx.is_cancelled
    assert not ctx.cancelled.wait(0.01)
    woke = threading.Event()

    def handler() -> None:
        if ctx.cancelled.wait(5):
            woke.set()

    thread = threading.Thread(target=handler)
    thread.start()
    ctx.cancelled.set()
    thread.join(5)
    assert woke.is_set()
    assert ctx.is_cancelled
    assert ctx.cancelled.wait(0)


def test_logger_names_the_attempt(caplog: pytest.LogCaptureFixture) -> None:
    ctx = _context()
    with caplog.at_level(logging.INFO, logger="surefoot.step"):
        ctx.logger.info("charging %s", "EUR 5")
    record = caplog.records[-1]
    assert record.name == "surefoot.step"
    assert "charging EUR 5" in record.getMessage()
    assert "charge-card" in record.getMessage() and "attempt 2" in record.getMessage()
    assert record.__dict__["run_id"] == "r1"
