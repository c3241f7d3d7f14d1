"""The ``@step`` decorator and the step definition it attaches to a handler."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast, get_args

from surefoot.v1 import common_pb2

from ._errors import StepDeclarationError
from ._retry import RetryPolicy

IdempotencyKind = Literal["key", "natural", "none"]

_IDEMPOTENCY_TO_PROTO: dict[str, common_pb2.Idempotency.ValueType] = {
    "key": common_pb2.IDEMPOTENCY_KEY,
    "natural": common_pb2.IDEMPOTENCY_NATURAL,
    "none": common_pb2.IDEMPOTENCY_NONE,
}

# Where the decorator stores the definition on the function; the function itself stays a
# plain function so that it can be called and tested without a worker.
_DEFINITION_ATTRIBUTE = "__surefoot_step_definition__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class StepDefinition:
    """A step type as this worker implements it.

    Attributes:
        name: The step type name workflows refer to (``"charge-card"``).
        version: The step type version; a task names both.
        idempotency: ``"key"``, ``"natural"`` or ``"none"``.
        retry: The default retry policy, or ``None`` for the server default.
        handler: The function called as ``handler(ctx, input)``.
        is_async: Whether the handler is a coroutine function (else it runs in a thread).
        description: Shown in the console next to the step type.
    """

    name: str
    version: str
    idempotency: IdempotencyKind
    retry: RetryPolicy | None
    handler: Callable[..., Any]
    is_async: bool
    description: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The ``(name, version)`` pair that identifies the step type."""
        return (self.name, self.version)

    def to_proto(self) -> common_pb2.StepTypeDeclaration:
        """Convert to the declaration sent in the worker's Hello.

        Returns:
            The ``surefoot.v1.StepTypeDeclaration`` message.
        """
        declaration = common_pb2.StepTypeDeclaration(
            name=self.name,
            version=self.version,
            idempotency=_IDEMPOTENCY_TO_PROTO[self.idempotency],
            description=self.description,
        )
        if self.retry is not None:
            declaration.retry.CopyFrom(self.retry.to_proto())
        return declaration

    @staticmethod
    def of(obj: object) -> StepDefinition | None:
        """The definition carried by a step-decorated function, or the object if it is one.

        Args:
            obj: Any object.

        Returns:
            The definition, or ``None`` if ``obj`` is not a step.
        """
        if isinstance(obj, StepDefinition):
            return obj
        definition = getattr(obj, _DEFINITION_ATTRIBUTE, None)
        return definition if isinstance(definition, StepDefinition) else None


def step(
    name: str | None = None,
    *,
    version: str = "1",
    idempotency: IdempotencyKind | None = None,
    retry: RetryPolicy | None = None,
    description: str = "",
) -> Callable[[F], F]:
    """Declare a function as the handler of a step type.

    The handler is called as ``handler(ctx, input)`` with a :class:`StepContext` and the
    decoded JSON input, and returns a JSON-serializable output. It may be ``async def`` (run on
    the worker's event loop) or a plain function (run in the worker's thread pool). The
    decorated function is returned unchanged, so it stays callable as before.

    Args:
        name: The step type name; defaults to the function name with ``_`` replaced by ``-``.
        version: The step type version.
        idempotency: Required. ``"key"``: the handler dedupes downstream with
            ``ctx.idempotency_key``; ``"natural"``: repeating it has no further effect;
            ``"none"``: never retried automatically (a crash mid-step goes to a human).
        retry: The default retry policy (server default when ``None``).
        description: Shown in the console; defaults to the first line of the docstring.

    Returns:
        A decorator that attaches a :class:`StepDefinition` to the function.

    Raises:
        StepDeclarationError: When the decorator is applied, if idempotency is missing or
            invalid, if a name or version is empty, or if the function cannot take
            ``(ctx, input)``.
    """
    if callable(name):
        # Used bare as ``@step``: there is no idempotency, which is exactly the mistake the
        # decorator exists to catch, so say so in the same words as ``@step()``.
        raise StepDeclarationError(_idempotency_message(name, None))

    def decorate(fn: F) -> F:
        if idempotency not in get_args(IdempotencyKind):
            raise StepDeclarationError(_idempotency_message(fn, idempotency))
        step_name = name if name is not None else fn.__name__.replace("_", "-")
        if not isinstance(step_name, str) or not step_name:
            raise StepDeclarationError(f"step {_describe(fn)} needs a non-empty name")
        if not isinstance(version, str) or not version:
            raise StepDeclarationError(
                f"step {_describe(fn)} needs a non-empty version string, got {version!r}"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise StepDeclarationError(
                f"step {_describe(fn)} takes retry=RetryPolicy(...), got {type(retry).__name__}"
            )
        _check_signature(fn)
        definition = StepDefinition(
            name=step_name,
            version=version,
            idempotency=cast(IdempotencyKind, idempotency),
            retry=retry,
            handler=fn,
            is_async=inspect.iscoroutinefunction(fn),
            description=description or _first_docstring_line(fn),
        )
        try:
            setattr(fn, _DEFINITION_ATTRIBUTE, definition)
        except (AttributeError, TypeError) as exc:
            raise StepDeclarationError(
                f"step {_describe(fn)} must be a Python function (cannot carry a definition)"
            ) from exc
        return fn

    return decorate


def _idempotency_message(fn: Callable[..., Any], given: object) -> str:
    got = "" if given is None else f" (got {given!r})"
    return (
        f"step function {_describe(fn)} must declare idempotency='key' (it dedupes with "
        f"ctx.idempotency_key), 'natural' (repeating it has no further effect) or 'none' "
        f"(never retried automatically){got}."
    )


def _describe(fn: Callable[..., Any]) -> str:
    return repr(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)


def _check_signature(fn: Callable[..., Any]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # Builtins and some C callables have no signature; let them through.
    try:
        signature.bind(None, None)
    except TypeError as exc:
        raise StepDeclarationError(
            f"step function {_describe(fn)} must accept two positional arguments "
            f"(ctx, input), its signature is {signature}"
        ) from exc


def _first_docstring_line(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn)
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
