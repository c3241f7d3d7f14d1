"""The built-in connector worker: ``surefoot connectors worker``.

It is an ordinary SDK worker whose steps are the connectors; the only things it adds are
the secrets (resolved here, never sent to the control plane) and the outcome records, which
it keeps through the control plane: it needs an address and, on a server with an auth file,
a token, never a database.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from surefoot_worker import ChannelSettings, run_worker

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
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    tls_server_name: str | None = None,
) -> int:
    """Run a worker for every connector until SIGTERM or SIGINT (the first one drains).

    Args:
        address: The control plane's gRPC address.
        namespace: The namespace whose connector tasks it takes.
        secrets: What ``${secret:NAME}`` references resolve to.
        token: The bearer token of its worker credential, for the stream and the outcome
            records ("" for none).
        concurrency: Tasks run at once; the SDK's default when None.
        tls_ca: PEM bundle of the server's CAs; turns TLS on.
        tls_cert: PEM client certificate for mutual TLS (with ``tls_key``).
        tls_key: PEM private key of ``tls_cert``.
        tls_server_name: The name the server's certificate is checked against.

    Returns:
        The exit code of :func:`surefoot_worker.run_worker` (2 for unusable TLS options).
    """
    settings = ChannelSettings(token, tls_ca, tls_cert, tls_key, tls_server_name)
    try:
        channel = settings.checked().open_blocking(address)
    except ValueError as exc:
        print(f"surefoot connectors worker: {exc}", file=sys.stderr, flush=True)
        return 2
    outcomes = OutcomeRecords(address, namespace=namespace, token=token, channel=channel)
    try:
        runtime = ConnectorRuntime(secrets=secrets, outcomes=outcomes)
        return serve(runtime, concurrency, settings)
    finally:
        outcomes.close()


def serve(
    runtime: ConnectorRuntime,
    concurrency: int | None = None,
    connection: ChannelSettings | None = None,
) -> int:
    """Run the connector steps of `runtime` on its outcome records' control plane, over
    `connection` (plaintext without a token by default)."""
    configure_logging(runtime)
    # Built at run time: the steps hold this worker's secrets and outcome records.
    steps = connector_steps(runtime)
    address, namespace = runtime.outcomes.address, runtime.outcomes.namespace
    c = connection or ChannelSettings()
    # Left out unless given, so that the SDK's default applies.
    options: dict[str, Any] = {"concurrency": concurrency} if concurrency else {}
    return run_worker(
        steps,
        address,
        namespace=namespace,
        token=c.token,
        tls_ca=c.tls_ca,
        tls_cert=c.tls_cert,
        tls_key=c.tls_key,
        tls_server_name=c.tls_server_name,
        **options,
    )


def configure_logging(runtime: ConnectorRuntime, level: int = logging.INFO) -> None:
    """Log to stderr as ``surefoot worker`` does, with every secret value redacted.

    Set up before the SDK would, so that its own default is not used; the redaction wraps
    whatever handlers the root logger has.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format=LOG_FORMAT)
    # httpx logs every request line at INFO: the URL is useful, the noise at scale is not.
    # The openai client's transport logs under "httpx2", the same line for every model call.
    for name in ("httpx", "httpx2"):
        logging.getLogger(name).setLevel(logging.WARNING)
    redact_logs(runtime.redactor)
