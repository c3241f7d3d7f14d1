"""Built-in connectors: step types implemented by Surefoot and run by a connector worker.

A connector is a normal step type (``surefoot.http``, ``surefoot.postgres``,
``surefoot.smtp``, ``surefoot.webhook``) served by a worker built on the Python SDK, so it is
dispatched, retried, dead-lettered and traced like any step. Each lives in one module of
this package with its input JSON Schema; ``registry.all_connectors()`` finds them, and
``steps.connector_steps()`` turns them into SDK step definitions.
"""

from controlplane.connectors.registry import Connector, all_connectors, connector_named
from controlplane.connectors.steps import ConnectorRuntime, connector_steps

__all__ = [
    "Connector",
    "ConnectorRuntime",
    "all_connectors",
    "connector_named",
    "connector_steps",
]
