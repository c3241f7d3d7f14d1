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


class WorkerRejected(Exception):
    """The control plane refused the worker's Hello (bad namespace, conflicting declarations).

    Retrying cannot help, so the worker stops instead of reconnecting forever.
    """
