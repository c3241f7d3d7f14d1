"""Built-in connectors: step types implemented by Surefoot and run by a connector worker.

A connector is a normal step type (``surefoot.ai``, ``surefoot.http``, ``surefoot.postgres``,
``surefoot.smtp``, ``surefoot.webhook``) served by a worker built on the Python SDK, so it is
dispatched, retried, dead-lettered and traced like any step. Each lives in one module of
this package with its input JSON Schema; ``registry.all_connectors()`` finds them, and
``steps.connector_steps()`` turns them into SDK step definitions. Calls that must not be
made twice keep their outcome records through the control plane (``dedupe.OutcomeRecords``):
like every worker, this package talks to the control plane over gRPC only.
"""

from surefoot_connectors.dedupe import OutcomeRecords
from surefoot_connectors.registry import Connector, all_connectors, connector_named
from surefoot_connectors.steps import ConnectorRuntime, connector_steps

__all__ = [
    "Connector",
    "ConnectorRuntime",
    "OutcomeRecords",
    "all_connectors",
    "connector_named",
    "connector_steps",
]
