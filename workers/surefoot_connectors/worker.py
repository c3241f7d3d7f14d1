"""The built-in connector worker: ``surefoot connectors worker``.

It is an ordinary SDK worker whose steps are the connectors; the only things it adds are
the secrets (resolved here, never sent to the control plane) and the outcome records, which
it keeps through the control plane: it needs an address and, on a server with an auth file,
a token, never a database.
"""

from __future__ import annotations

import logging

from surefoot_worker import run_worker

from surefoot_connectors.dedupe import OutcomeRecords
from surefoot_connectors.redaction import redact_logs
from surefoot_connectors.secrets import Secrets
from surefoot_connectors.steps import ConnectorRuntime, connector_steps

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def run_connector_worker(
    address: str,
    *,
    namespace: str,
    secrets: Secrets,
    token: str = "",
    concurrency: int | None = None,
) -> int:
    """Run a worker for every connector until SIGTERM or SIGINT (the first one drains).

    Args:
        address: The control plane's gRPC address.
        namespace: The namespace whose connector tasks it takes.
        secrets: What ``${secret:NAME}`` references resolve to.
        token: The bearer token the outcome records are kept with ("" for none).
        concurrency: Tasks run at once; the SDK's default when None.

    Returns:
        The exit code of :func:`surefoot_worker.run_worker`.
    """
    outcomes = OutcomeRecords(address, namespace=namespace, token=token)
    try:
        return serve(ConnectorRuntime(secrets=secrets, outcomes=outcomes), concurrency)
    finally:
        outcomes.close()


def serve(runtime: ConnectorRuntime, concurrency: int | None = None) -> int:
    """Run the connector steps of `runtime` on its outcome records' control plane."""
    configure_logging(runtime)
    # Built at run time: the steps hold this worker's secrets and outcome records.
    steps = connector_steps(runtime)
    address, namespace = runtime.outcomes.address, runtime.outcomes.namespace
    if concurrency:
        return run_worker(steps, address, namespace=namespace, concurrency=concurrency)
    # Left out otherwise, so that the SDK's default applies.
    return run_worker(steps, address, namespace=namespace)


def configure_logging(runtime: ConnectorRuntime, level: int = logging.INFO) -> None:
    """Log to stderr as ``surefoot worker`` does, with every secret value redacted.

    Set up before the SDK would, so that its own default is not used; the redaction wraps
    whatever handlers the root logger has.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    # httpx logs every request line at INFO: the URL is useful, the noise at scale is not.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    redact_logs(runtime.redactor)
