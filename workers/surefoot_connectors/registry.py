"""The connectors Surefoot ships: what each one is, and finding them all.

Every module of this package that defines ``CONNECTOR`` is a connector, so adding one is
adding a module with its schema and handler; the CLI, ``surefoot dev`` and the connector
worker find it here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from surefoot_worker import RetryPolicy

from surefoot_connectors.call import ConnectorCall

PACKAGE = "surefoot_connectors"

IdempotencyKind = Literal["key", "natural", "none"]


@dataclass(frozen=True)
class Connector:
    """A step type implemented by Surefoot itself.

    Attributes:
        name: The step type workflows name (``surefoot.http``).
        version: The step type version.
        summary: One line for ``surefoot connectors list`` and the console.
        input_schema: The JSON Schema (draft 2020-12) every input must satisfy; checked in
            the worker once the input's secret references are resolved, before any call.
        idempotency: The step type's declaration, as for any step.
        retry: The default retry policy; a workflow node may replace it.
        handler: Makes the call: ``handler(call) -> output``, raising ConnectorFailure.
        resolves_secrets: Whether the step wrapper replaces ``${secret:NAME}`` everywhere in
            the input before the call. False for a connector whose input carries run data
            to a third party (an AI prompt's variables): it resolves only the fields meant
            to hold secrets, with ``call.secrets``, so that run data cannot pull a secret
            into what it sends.
    """

    name: str
    version: str
    summary: str
    input_schema: Mapping[str, Any]
    idempotency: IdempotencyKind
    retry: RetryPolicy
    handler: Callable[[ConnectorCall], Any]
    resolves_secrets: bool = True

    @functools.cached_property
    def validator(self) -> Draft202012Validator:
        """A validator of inputs, built once per connector."""
        return Draft202012Validator(self.input_schema)

    def to_json(self) -> dict[str, Any]:
        """The connector as ``surefoot connectors list --json`` prints it."""
        retry = self.retry
        return {
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "idempotency": self.idempotency,
            "retry": {
                "max_attempts": retry.max_attempts,
                "initial_interval_seconds": retry.initial_interval,
                "backoff_coefficient": retry.backoff_coefficient,
                "max_interval_seconds": retry.max_interval,
                "jitter": retry.jitter,
                "non_retryable_error_types": list(retry.non_retryable_error_types),
            },
            "input_schema": dict(self.input_schema),
        }


@functools.cache
def all_connectors() -> tuple[Connector, ...]:
    """Every connector of this package, sorted by name.

    Raises:
        ValueError: If two modules declare the same name, or a schema is not a valid JSON
            Schema; both are bugs of this package, found by its tests.
    """
    package = importlib.import_module(PACKAGE)
    found: dict[str, Connector] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{PACKAGE}.{module_info.name}")
        connector = getattr(module, "CONNECTOR", None)
        if not isinstance(connector, Connector):
            continue  # a helper module (secrets, dedupe, ...)
        if connector.name in found:
            raise ValueError(f"connector {connector.name} is declared twice")
        Draft202012Validator.check_schema(connector.input_schema)
        found[connector.name] = connector
    return tuple(found[name] for name in sorted(found))


def connector_named(name: str) -> Connector:
    """The connector called `name`.

    Raises:
        KeyError: If there is none.
    """
    for connector in all_connectors():
        if connector.name == name:
            return connector
    raise KeyError(name)
