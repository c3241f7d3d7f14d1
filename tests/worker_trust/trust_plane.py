"""A control plane with worker credentials of every shape the worker trust tests need.

Tokens are kept hashed in the auth file, as in production. `stub` acts as an admin (it
registers definitions and starts runs); worker streams present the token of their case.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from controlplane.auth.tokens import token_hash
from tests.support.approval_auth import AuthControlPlane
from tests.support.processes import ProcessRegistry

ADMIN = "trust-admin-token"
WORKER = "trust-worker-token"  # worker in "default"
OTHER_WORKER = "trust-other-worker-token"  # another worker in "default"
CHARGER = "trust-charger-token"  # worker in "default", for charge-card only
PAYMENTS = "trust-payments-token"  # worker in "payments" only
VIEWER = "trust-viewer-token"  # reads "default", runs nothing

CREDENTIALS: dict[str, dict[str, Any]] = {
    ADMIN: {"principal": "admin", "namespaces": {"*": ["admin"]}},
    WORKER: {"principal": "worker-default", "namespaces": {"default": ["worker"]}},
    OTHER_WORKER: {"principal": "other-worker", "namespaces": {"default": ["worker"]}},
    CHARGER: {
        "principal": "charger",
        "namespaces": {"default": ["worker"]},
        "step_types": ["charge-card"],
    },
    PAYMENTS: {"principal": "payments-worker", "namespaces": {"payments": ["worker"]}},
    VIEWER: {"principal": "viewer", "namespaces": {"default": ["viewer"]}},
}


def write_auth_file(path: Path, certificates: dict[str, dict[str, Any]] | None = None) -> Path:
    document: dict[str, Any] = {
        "tokens": {token_hash(token): entry for token, entry in CREDENTIALS.items()}
    }
    if certificates:
        document["certificates"] = certificates
    path.write_text(yaml.safe_dump(document))
    return path


class TrustPlane(AuthControlPlane):
    """`surefoot server --auth-file FILE [EXTRA_ARGS]`: its stub acts as ADMIN, and the workers
    a test starts present no token unless the test gives them one."""

    def __init__(
        self,
        registry: ProcessRegistry,
        database_url: str,
        auth_file: Path,
        extra_args: Sequence[str] = (),
        lease_seconds: float = 2.0,
        tls_ca: str | None = None,
    ) -> None:
        super().__init__(
            registry,
            database_url,
            auth_file,
            lease_seconds,
            stub_token=ADMIN,
            worker_token=None,
            extra_args=extra_args,
            tls_ca=tls_ca,
        )


def stored(database_url: str) -> dict[str, Any]:
    """What a refused worker message could have written: the rows of every table that
    workers touch, and every lease as it stands."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            counts = {
                table: int(
                    connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                )
                for table in ("history", "step_types", "tasks", "runs", "connector_outcomes")
            }
            leases = connection.execute(
                sa.text(
                    "SELECT id, status, session_id, worker_id, lease_expires_at FROM tasks "
                    "ORDER BY id"
                )
            ).all()
        return {"counts": counts, "leases": [tuple(row) for row in leases]}
    finally:
        engine.dispose()
