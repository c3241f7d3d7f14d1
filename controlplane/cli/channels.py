"""Channels to the control plane for the CLI, the console and the bench: TLS and a token.

One place decides how a client connects, so that `--tls-ca` or `SUREFOOT_TOKEN` means the same
to every command. Giving a CA bundle turns TLS on (the server's certificate is verified against
it); a client certificate and key add mutual TLS; the token travels as `authorization: Bearer`
metadata on every call. Without a CA bundle the channel is plaintext, as `surefoot dev` and a
server started without `--tls-cert` expect. Bad options are one-line usage errors (exit 2)
before anything is sent.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from controlplane.cli.errors import usage_error
from controlplane.tls_files import TlsFilesError, read_tls_files

ChannelOption = tuple[str, Any]


@dataclass(frozen=True)
class Connection:
    """How to reach the control plane: address, bearer token and TLS files."""

    address: str
    token: str = ""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    # The deadline of each unary call, in seconds (--timeout).
    timeout: float = 10.0

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata: the bearer token, if any."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def check(self) -> Connection:
        """Self, once the token can travel and the TLS options are consistent (else exit 2)."""
        bearer_token(self.token)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise usage_error("--tls-cert and --tls-key go together (a client certificate)")
        if self.tls_cert and not self.tls_ca:
            raise usage_error("--tls-cert needs --tls-ca: mutual TLS is TLS first")
        if self.tls_server_name and not self.tls_ca:
            raise usage_error("--tls-server-name needs --tls-ca (it only matters with TLS)")
        return self

    def credentials(self) -> grpc.ChannelCredentials | None:
        """The TLS credentials from the files, None for a plaintext channel."""
        self.check()
        if not self.tls_ca:
            return None
        try:
            files = read_tls_files(
                ca=self.tls_ca, cert=self.tls_cert, key=self.tls_key, ca_option="--tls-ca"
            )
        except TlsFilesError as exc:
            raise usage_error(str(exc)) from exc
        return grpc.ssl_channel_credentials(
            root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
        )

    def channel_options(self) -> list[ChannelOption]:
        if self.tls and self.tls_server_name:
            # The name checked against the server's certificate, when the address is an IP or
            # a load balancer's name the certificate does not carry.
            return [("grpc.ssl_target_name_override", self.tls_server_name)]
        return []

    def channel(self, options: Sequence[ChannelOption] = ()) -> grpc.Channel:
        """A blocking channel; the caller closes it."""
        credentials = self.credentials()
        merged = [*self.channel_options(), *options]
        if credentials is None:
            return grpc.insecure_channel(self.address, options=merged)
        return grpc.secure_channel(self.address, credentials, options=merged)

    def aio_channel(self, options: Sequence[ChannelOption] = ()) -> grpc.aio.Channel:
        """An asyncio channel; the caller closes it."""
        credentials = self.credentials()
        merged = [*self.channel_options(), *options]
        if credentials is None:
            return grpc.aio.insecure_channel(self.address, options=merged)
        return grpc.aio.secure_channel(self.address, credentials, options=merged)

    def environment(self) -> dict[str, str]:
        """The same connection as the environment a child process (a worker) reads."""
        values = {
            "SUREFOOT_ADDRESS": self.address,
            "SUREFOOT_TOKEN": self.token,
            "SUREFOOT_TLS_CA": self.tls_ca,
            "SUREFOOT_TLS_CERT": self.tls_cert,
            "SUREFOOT_TLS_KEY": self.tls_key,
            "SUREFOOT_TLS_SERVER_NAME": self.tls_server_name,
        }
        return {name: value for name, value in values.items() if value}


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--token and the --tls-* options, defaulting to their SUREFOOT_* variables."""
    parser.add_argument(
        "--token",
        # Never shown by --help: the default comes from the environment and is a secret.
        default=os.environ.get("SUREFOOT_TOKEN", ""),
        metavar="TOKEN",
        help="bearer token that says who you are, sent as `authorization: Bearer TOKEN` "
        "(env SUREFOOT_TOKEN; needed for every call to a server with credentials)",
    )
    tls = parser.add_argument_group("TLS (without --tls-ca the connection is plaintext)")
    tls.add_argument(
        "--tls-ca",
        default=_environ("SUREFOOT_TLS_CA"),
        metavar="PATH",
        help="PEM bundle of the CAs that sign the server's certificate; turns TLS on "
        "(env SUREFOOT_TLS_CA)",
    )
    tls.add_argument(
        "--tls-cert",
        default=_environ("SUREFOOT_TLS_CERT"),
        metavar="PATH",
        help="PEM client certificate, for a server that requires mutual TLS "
        "(env SUREFOOT_TLS_CERT)",
    )
    tls.add_argument(
        "--tls-key",
        default=_environ("SUREFOOT_TLS_KEY"),
        metavar="PATH",
        help="PEM private key of --tls-cert (env SUREFOOT_TLS_KEY)",
    )
    tls.add_argument(
        "--tls-server-name",
        default=_environ("SUREFOOT_TLS_SERVER_NAME"),
        metavar="NAME",
        help="name to check the server's certificate against, instead of the address's host "
        "(env SUREFOOT_TLS_SERVER_NAME)",
    )


def connection_from_args(args: argparse.Namespace) -> Connection:
    """The checked connection the parsed options describe."""
    return Connection(
        address=args.address,
        token=bearer_token(getattr(args, "token", "") or ""),
        tls_ca=getattr(args, "tls_ca", None),
        tls_cert=getattr(args, "tls_cert", None),
        tls_key=getattr(args, "tls_key", None),
        tls_server_name=getattr(args, "tls_server_name", None),
        timeout=getattr(args, "timeout", None) or Connection.timeout,
    ).check()


def bearer_token(token: str) -> str:
    """`token` without surrounding blanks, refused (exit 2) unless it can travel as metadata.

    gRPC refuses other characters in metadata, at the first call and with an error that names
    no option: say it before anything is sent.
    """
    token = token.strip()
    if not all(33 <= ord(ch) <= 126 for ch in token):
        raise usage_error("--token must be printable ASCII without spaces")
    return token


def transport_failure(connection: Connection, details: str) -> str | None:
    """What went wrong, when a channel that cannot connect failed at TLS rather than finding
    nothing listening; None when nothing says so. `details` are an UNAVAILABLE's details."""
    lowered = details.lower()
    if connection.tls and any(
        word in lowered for word in ("handshake", "ssl", "certificate", "verification")
    ):
        return (
            f"TLS handshake with the control plane at {connection.address} failed "
            f"(check --tls-ca, --tls-cert and --tls-server-name): {details}"
        )
    if "socket closed" not in lowered:
        return None
    if connection.tls:
        # A mutual TLS listener hangs up on a client without a certificate it trusts.
        return (
            f"the control plane at {connection.address} closed the connection during the TLS "
            "handshake (does it require a client certificate? give --tls-cert and --tls-key)"
        )
    # A TLS listener hangs up on a plaintext HTTP/2 preface.
    return (
        f"the control plane at {connection.address} closed the connection "
        "(does it serve TLS? give --tls-ca or SUREFOOT_TLS_CA)"
    )


def _environ(name: str) -> str | None:
    return os.environ.get(name) or None
