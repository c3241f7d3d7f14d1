"""Surefoot Python worker SDK: declare steps with ``@step`` and run them with ``Worker``.

A step is a function ``(ctx: StepContext, input) -> output`` that declares how it handles
being run more than once, e.g. ``@step(idempotency="key")``; ``surefoot worker MODULE`` (or
:func:`run_worker`) connects the steps of a module to the control plane.
"""

from ._context import StepContext
from ._errors import NonRetryableError, RetryLaterError, StepDeclarationError, WorkerRejected
from ._loader import load_steps
from ._retry import RetryPolicy
from ._run import run_worker
from ._step import StepDefinition, step
from ._worker import Worker

__all__ = [
    "NonRetryableError",
    "RetryLaterError",
    "RetryPolicy",
    "StepContext",
    "StepDeclarationError",
    "StepDefinition",
    "Worker",
    "WorkerRejected",
    "load_steps",
    "run_worker",
    "step",
]
