"""Exceptions that are part of the worker SDK's public surface."""

from __future__ import annotations


class StepDeclarationError(TypeError):
    """A step is declared wrongly (raised when the ``@step`` decorator is applied).

    It subclasses TypeError because, like a wrong argument type, it is a programming error
    that must surface when the module is imported, not when the first task arrives.
    """


class NonRetryableError(Exception):
    """Raise from a step handler to fail the attempt without automatic retries.

    The step goes straight to the dead letters, where an operator decides what to do.

    Args:
        message: What went wrong, shown to the operator.
        type: The error type recorded on the attempt; defaults to ``"NonRetryableError"``.
            Use a stable name (``"CardDeclined"``) so that dead letters group by it.
    """

    def __init__(self, message: str, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "NonRetryableError"


class RetryLaterError(Exception):
    """Raise from a step handler to fail the attempt and have the retry wait at least a while.

    For a service that says when to come back (HTTP ``Retry-After``, a rate limit's reset):
    the next attempt starts no sooner than ``retry_after`` seconds from now, or later if the
    step's retry policy asks for a longer delay. It still counts as an attempt.

    Args:
        message: What went wrong, shown to the operator.
        retry_after: Seconds to wait at least before the next attempt.
        type: The error type recorded on the attempt; defaults to ``"RetryLater"``.
    """

    def __init__(self, message: str, retry_after: float, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(0.0, float(retry_after))
        self.type = type or "RetryLater"


class WorkerRejected(Exception):
    """The control plane refused the worker's Hello (bad namespace, conflicting declarations).

    Retrying cannot help, so the worker stops instead of reconnecting forever.
    """
