"""What workers declared for their step types, as the engine reads it: an immutable snapshot.

The engine does no I/O (law 4): the store builds a `StepTypes` before a transition and the
engine only looks things up in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from surefoot.v1 import common_pb2

from controlplane.engine.retry import (
    DEFAULT_BACKOFF,
    DEFAULT_INITIAL_INTERVAL,
    DEFAULT_JITTER,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_INTERVAL,
    RetryPolicy,
)

IDEMPOTENCY_NAMES = {
    common_pb2.IDEMPOTENCY_KEY: "key",
    common_pb2.IDEMPOTENCY_NATURAL: "natural",
    common_pb2.IDEMPOTENCY_NONE: "none",
}


@dataclass(frozen=True)
class StepDeclaration:
    """What a worker declared for a step type: how it handles retry."""

    idempotency: str
    retry: RetryPolicy


StepCatalog = Callable[[str, str], StepDeclaration | None]
"""Look up a step type's declaration by (name, version); version "" means the newest."""


def _frozen(mapping: dict[Any, StepDeclaration]) -> MappingProxyType[Any, StepDeclaration]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class StepTypes:
    """The step types of one namespace at one moment: plain data, nothing to read.

    `newest` holds, per name, the most recently registered or updated version; a lookup
    without a version takes it."""

    by_version: MappingProxyType[tuple[str, str], StepDeclaration] = field(
        default_factory=lambda: _frozen({})
    )
    newest: MappingProxyType[str, StepDeclaration] = field(default_factory=lambda: _frozen({}))

    @classmethod
    def of(cls, declarations: Iterable[tuple[str, str, StepDeclaration]]) -> StepTypes:
        """From (name, version, declaration), oldest first: a later one of a name is newer."""
        by_version: dict[tuple[str, str], StepDeclaration] = {}
        newest: dict[str, StepDeclaration] = {}
        for name, version, declared in declarations:
            by_version[(name, version)] = declared
            newest[name] = declared
        return cls(_frozen(by_version), _frozen(newest))

    def with_newer(self, declarations: Iterable[tuple[str, str, StepDeclaration]]) -> StepTypes:
        """This snapshot with `declarations` registered after everything in it."""
        by_version = dict(self.by_version)
        newest = dict(self.newest)
        for name, version, declared in declarations:
            by_version[(name, version)] = declared
            newest[name] = declared
        return StepTypes(_frozen(by_version), _frozen(newest))

    def __call__(self, name: str, version: str) -> StepDeclaration | None:
        if version:
            return self.by_version.get((name, version))
        return self.newest.get(name)


NO_STEP_TYPES = StepTypes()


def retry_from_proto(policy: common_pb2.RetryPolicy) -> RetryPolicy:
    """Fill zero fields with the server defaults."""
    return RetryPolicy(
        max_attempts=policy.max_attempts or DEFAULT_MAX_ATTEMPTS,
        initial_interval=policy.initial_interval_seconds or DEFAULT_INITIAL_INTERVAL,
        backoff_coefficient=policy.backoff_coefficient or DEFAULT_BACKOFF,
        max_interval=policy.max_interval_seconds or DEFAULT_MAX_INTERVAL,
        jitter=policy.jitter if policy.HasField("jitter") else DEFAULT_JITTER,
        non_retryable_error_types=tuple(policy.non_retryable_error_types),
    )


def declaration_from_proto(declared: common_pb2.StepTypeDeclaration) -> StepDeclaration:
    return StepDeclaration(
        IDEMPOTENCY_NAMES[declared.idempotency], retry_from_proto(declared.retry)
    )


def resolve_policy(
    step_type: str,
    step_version: str,
    idempotency: str | None,
    retry: RetryPolicy | None,
    catalog: StepCatalog,
) -> tuple[str, RetryPolicy] | None:
    """The idempotency mode and retry policy a step runs with: the node's own declaration
    first, then its step type's registration. None when neither declares idempotency."""
    declared = catalog(step_type, step_version)
    mode = idempotency or (declared.idempotency if declared else None)
    if mode is None:
        return None
    return mode, retry or (declared.retry if declared else None) or RetryPolicy()
