"""Reading the PEM files of a TLS endpoint, with errors an operator can act on.

gRPC takes certificates as bytes and says only "handshake failed" (client) or aborts (server)
when they are wrong. Both ends read them here first: a missing file, a file that is not PEM or
a key that does not belong to its certificate is one line naming the option, before anything
listens or dials.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsFilesError(ValueError):
    """A TLS file that cannot be used; the message names the option and the path."""


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes: the CA bundle to verify the peer with, and our own certificate and key."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None


def read_tls_files(
    ca: str | None,
    cert: str | None,
    key: str | None,
    ca_option: str,
    cert_option: str = "--tls-cert",
    key_option: str = "--tls-key",
) -> TlsFiles:
    """The files' bytes, once Python's own TLS stack has loaded them the way gRPC will.

    Raises:
        TlsFilesError: A file is missing or unreadable, is not PEM, the bundle holds no CA
            certificate, or the key does not match the certificate (or is encrypted).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca_bytes = _read_pem(ca, ca_option) if ca else None
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsFilesError(
                f"{ca_option}: {ca} holds no usable CA certificate ({exc})"
            ) from None
    cert_bytes = _read_pem(cert, cert_option) if cert else None
    key_bytes = _read_pem(key, key_option) if key else None
    if cert and key:
        try:
            # An empty password: an encrypted key fails here instead of prompting.
            context.load_cert_chain(certfile=cert, keyfile=key, password=lambda: b"")
        except (ssl.SSLError, ValueError) as exc:
            raise TlsFilesError(
                f"{key_option} {key} does not match {cert_option} {cert}, or one of them is "
                f"not a PEM certificate or unencrypted key ({exc})"
            ) from None
    return TlsFiles(ca=ca_bytes, cert=cert_bytes, key=key_bytes)


def _read_pem(path: str, option: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsFilesError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsFilesError(f"{option}: {path} is not a PEM file")
    return data


def server_credentials(cert: str, key: str, client_ca: str | None = None) -> grpc.ServerCredentials:
    """A TLS listener's credentials; with `client_ca`, clients must present a certificate it
    signed (mutual TLS), and any other client is refused during the handshake."""
    files = read_tls_files(ca=client_ca, cert=cert, key=key, ca_option="--tls-client-ca")
    assert files.cert is not None and files.key is not None
    return grpc.ssl_server_credentials(
        [(files.key, files.cert)],
        root_certificates=files.ca,
        require_client_auth=files.ca is not None,
    )
