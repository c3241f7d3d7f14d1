"""The messages that report how an attempt ended: Complete, Fail or HandBack."""

from __future__ import annotations

import traceback
from typing import Any

from surefoot.v1 import worker_service_pb2 as pb

from ._errors import NonRetryableError, RetryLaterError
from ._payload import JSON_ENCODING, encode_json_bytes

# Tracebacks go into the attempt's row and the console; 8 KB keeps the interesting frames
# without letting a deep recursion bloat every retry of a failing step.
MAX_DETAILS_BYTES = 8 * 1024
_TRUNCATION_MARK = "... (traceback truncated)\n"


def completed(task_id: str, attempt: int, output: Any) -> pb.WorkerMessage:
    """The result of a handler that returned, or a Fail if its output is not JSON.

    Args:
        task_id: The task.
        attempt: The attempt number the task carried.
        output: What the handler returned.

    Returns:
        A Complete, or a non-retryable Fail with error type ``OutputNotSerializable``
        (running the same code again would produce the same unencodable output).
    """
    try:
        data = encode_json_bytes(output)
    except TypeError as exc:
        return failed_with(
            task_id,
            attempt,
            error_type="OutputNotSerializable",
            message=f"step output of type {type(output).__name__} is not JSON: {exc}",
            retryable=False,
        )
    # Filled in place: building nested messages by keyword copies each of them, which is
    # measurable on the per-task path.
    message = pb.WorkerMessage()
    complete = message.complete
    complete.task_id = task_id
    complete.attempt = attempt
    complete.output.encoding = JSON_ENCODING
    complete.output.data = data
    return message


def failed(task_id: str, attempt: int, exc: BaseException) -> pb.WorkerMessage:
    """The result of a handler that raised.

    Args:
        task_id: The task.
        attempt: The attempt number the task carried.
        exc: The exception; a :class:`NonRetryableError` is reported as not retryable.

    Returns:
        A Fail carrying the exception's type name, message and traceback.
    """
    retry_after = 0.0
    if isinstance(exc, NonRetryableError):
        error_type, message, retryable = exc.type, exc.message, False
    elif isinstance(exc, RetryLaterError):
        error_type, message, retryable = exc.type, exc.message, True
        retry_after = exc.retry_after
    else:
        error_type, message, retryable = type(exc).__name__, str(exc), True
    return failed_with(
        task_id,
        attempt,
        error_type=error_type,
        message=message,
        retryable=retryable,
        details=traceback_text(exc),
        retry_after=retry_after,
    )


def failed_with(
    task_id: str,
    attempt: int,
    *,
    error_type: str,
    message: str,
    retryable: bool,
    details: str = "",
    retry_after: float = 0.0,
) -> pb.WorkerMessage:
    """A Fail built from its fields."""
    return pb.WorkerMessage(
        fail=pb.Fail(
            task_id=task_id,
            attempt=attempt,
            error_type=error_type,
            message=message,
            retryable=retryable,
            details=details,
            retry_after_seconds=retry_after,
        )
    )


def handed_back(task_id: str, attempt: int, reason: str) -> pb.WorkerMessage:
    """A HandBack: the worker gives the attempt back without finishing it."""
    return pb.WorkerMessage(hand_back=pb.HandBack(task_id=task_id, attempt=attempt, reason=reason))


def traceback_text(exc: BaseException) -> str:
    """The formatted traceback, keeping its last 8 KB (UTF-8) where the error is.

    Args:
        exc: The exception.

    Returns:
        The traceback text, at most :data:`MAX_DETAILS_BYTES` bytes when encoded.
    """
    text = "".join(traceback.format_exception(exc))
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_DETAILS_BYTES:
        return text
    keep = MAX_DETAILS_BYTES - len(_TRUNCATION_MARK.encode("utf-8"))
    # errors="ignore" drops a multi-byte character cut in half at the boundary.
    return _TRUNCATION_MARK + encoded[-keep:].decode("utf-8", errors="ignore")
