"""How a handler's return or exception becomes Complete or Fail."""

from __future__ import annotations

import json

from surefoot_worker import NonRetryableError, RetryLaterError
from surefoot_worker._outcome import MAX_DETAILS_BYTES, completed, failed, traceback_text


def _raise(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_output_becomes_complete_with_json_payload() -> None:
    message = completed("t1", 2, {"order_id": "o1", "reserved": True})
    assert message.WhichOneof("message") == "complete"
    assert message.complete.task_id == "t1"
    assert message.complete.attempt == 2
    assert message.complete.output.encoding == "json/plain"
    assert json.loads(message.complete.output.data) == {"order_id": "o1", "reserved": True}


def test_output_that_is_not_json_is_a_non_retryable_fail() -> None:
    message = completed("t1", 1, {"when": object()})
    assert message.WhichOneof("message") == "fail"
    assert message.fail.task_id == "t1"
    assert message.fail.attempt == 1
    assert message.fail.error_type == "OutputNotSerializable"
    assert not message.fail.retryable
    assert "dict" in message.fail.message


def test_exception_is_a_retryable_fail_with_type_message_and_traceback() -> None:
    message = failed("t1", 3, _raise(ConnectionError("bank timed out")))
    assert message.WhichOneof("message") == "fail"
    assert message.fail.attempt == 3
    assert message.fail.error_type == "ConnectionError"
    assert message.fail.message == "bank timed out"
    assert message.fail.retryable
    assert "Traceback" in message.fail.details
    assert "ConnectionError: bank timed out" in message.fail.details


def test_non_retryable_error_is_not_retryable_and_keeps_its_type() -> None:
    message = failed("t1", 1, _raise(NonRetryableError("card declined", type="CardDeclined")))
    assert message.fail.error_type == "CardDeclined"
    assert message.fail.message == "card declined"
    assert not message.fail.retryable


def test_non_retryable_error_without_type_uses_its_class_name() -> None:
    message = failed("t1", 1, _raise(NonRetryableError("no")))
    assert message.fail.error_type == "NonRetryableError"
    assert not message.fail.retryable


def test_retry_later_is_retryable_and_carries_the_wait() -> None:
    message = failed("t1", 2, _raise(RetryLaterError("rate limited", retry_after=12.5)))
    assert (message.fail.error_type, message.fail.message) == ("RetryLater", "rate limited")
    assert message.fail.retryable
    assert message.fail.retry_after_seconds == 12.5


def test_other_failures_ask_for_no_wait() -> None:
    assert failed("t1", 1, _raise(ValueError("x"))).fail.retry_after_seconds == 0


def test_traceback_is_truncated_to_8kb_keeping_the_error_line() -> None:
    # A chain of 200 distinct exceptions gives a traceback far over 8 KB; Python would
    # collapse plain recursion into one "previous line repeated" line.
    error: Exception | None = None
    for layer in range(200):
        try:
            raise ValueError(f"layer {layer} ünïcode " + "x" * 40) from error
        except ValueError as exc:
            error = exc
    assert error is not None
    text = traceback_text(error)
    assert len(text.encode("utf-8")) <= MAX_DETAILS_BYTES
    assert text.startswith("... (traceback truncated)")
    assert text.rstrip().endswith("ValueError: layer 199 ünïcode " + "x" * 40)


def test_short_traceback_is_kept_whole() -> None:
    exc = _raise(KeyError("sku"))
    assert traceback_text(exc).startswith("Traceback")
