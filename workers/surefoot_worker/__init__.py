"""Surefoot Python worker SDK: declare steps with ``@step`` and run them with ``Worker``.

A step is a function ``(ctx: StepContext, input) -> output`` that declares how it handles
being run more than once, e.g. ``@step(idempotency="key")``; ``surefoot-worker MODULE``,
``python -m surefoot_worker MODULE`` or :func:`run_worker` connect the steps of a module to
the control plane. Workflows are authored as YAML/JSON files or with :class:`Workflow`
(see :mod:`surefoot_worker.authoring`).

The SDK is its own distribution (``pip install ./workers``): it needs grpcio, protobuf and
PyYAML, never the control plane's packages.
"""

from ._channel import ChannelSettings
from ._context import StepContext
from ._errors import NonRetryableError, RetryLaterError, StepDeclarationError, WorkerRejected
from ._loader import load_steps
from ._retry import RetryPolicy
from ._run import run_worker
from ._step import StepDefinition, step
from ._worker import Worker
from .authoring import DefinitionFileError, Workflow, load_definitions

__all__ = [
    "ChannelSettings",
    "DefinitionFileError",
    "NonRetryableError",
    "RetryLaterError",
    "RetryPolicy",
    "StepContext",
    "StepDeclarationError",
    "StepDefinition",
    "Worker",
    "WorkerRejected",
    "Workflow",
    "load_definitions",
    "load_steps",
    "run_worker",
    "step",
]
