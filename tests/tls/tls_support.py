"""A control plane serving TLS, and what the TLS tests measure it with."""

from __future__ import annotations

import grpc
import sqlalchemy as sa
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.cli.channels import Connection
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.tls import KeyPair, TlsFiles


class TlsControlPlane(ControlPlane):
    """`surefoot server` with the CA's localhost certificate (and, `mutual`, the CA as the
    client CA). `channel` and `stub` connect over TLS, with a client certificate when mutual."""

    def __init__(
        self,
        registry: ProcessRegistry,
        database_url: str,
        files: TlsFiles,
        mutual: bool = False,
        lease_seconds: float = 2.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(registry, database_url, lease_seconds)
        self.files = files
        self.mutual = mutual
        self.extra_args = extra_args
        self.client_pair: KeyPair | None = files.client("test-client") if mutual else None

    def server_command(self, port: int) -> list[str]:
        tls = ["--tls-cert", str(self.files.server.cert), "--tls-key", str(self.files.server.key)]
        if self.mutual:
            tls += ["--tls-client-ca", str(self.files.ca.cert)]
        return [*super().server_command(port), *tls, *self.extra_args]

    def connection(self, client: KeyPair | None = None, ca: str | None = None) -> Connection:
        """A TLS connection trusting the CA (or `ca`), with `client`'s certificate if given."""
        return Connection(
            address=self.address,
            tls_ca=ca or str(self.files.ca.cert),
            tls_cert=str(client.cert) if client else None,
            tls_key=str(client.key) if client else None,
        )

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = self.connection(self.client_pair).channel()
        return self._channel


def stub_of(channel: grpc.Channel) -> workflow_service_pb2_grpc.WorkflowServiceStub:
    return workflow_service_pb2_grpc.WorkflowServiceStub(channel)


def row_counts(database_url: str) -> dict[str, int]:
    """Rows per table: a refused request must leave every count as it was."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            return {
                table: int(
                    connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                )
                for table in tables
                if table != "alembic_version"
            }
    finally:
        engine.dispose()
