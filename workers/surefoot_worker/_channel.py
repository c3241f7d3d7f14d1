"""How a worker reaches the control plane: which addresses, TLS, its credential, the message
size limit and how soon the channel tries again after losing it.

Several control planes serve one database (law 9), so a worker may be given several
addresses (``a:7233,b:7233``, or a DNS name that resolves to several): its one channel then
holds them all and gRPC's pick_first connects to the first that answers, so a worker whose
control plane dies reconnects to another instead of waiting for that one to come back.

The SDK is its own distribution, so it builds its channel itself (the same options as the
CLI: `--token`, `--tls-ca`, `--tls-cert`, `--tls-key`, `--tls-server-name`). Giving a CA
bundle turns TLS on; a client certificate and key add mutual TLS; the token travels as
`authorization: Bearer` metadata on the stream, which works on a plaintext channel too
(gRPC's call credentials would need TLS).
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from ._reconnect import DEFAULT_MAX_RECONNECT_DELAY, check_max_reconnect_delay

# The largest message either side accepts; the control plane's default (--max-message-bytes).
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# gRPC draws each connection backoff from up to 20% above or below its cap.
_GRPC_BACKOFF_JITTER = 0.2

ENVIRONMENT = {
    "token": "SUREFOOT_TOKEN",
    "tls_ca": "SUREFOOT_TLS_CA",
    "tls_cert": "SUREFOOT_TLS_CERT",
    "tls_key": "SUREFOOT_TLS_KEY",
    "tls_server_name": "SUREFOOT_TLS_SERVER_NAME",
}


@dataclass(frozen=True)
class ChannelSettings:
    """The options of a worker's channel; :meth:`checked` reads and checks the files.

    Args:
        token: Bearer token of a worker credential ("" for none: dev mode, ``--no-auth``).
        tls_ca: PEM bundle of the CAs that sign the server's certificate; turns TLS on.
        tls_cert: PEM client certificate (mutual TLS); needs ``tls_key`` and ``tls_ca``.
        tls_key: PEM private key of ``tls_cert``.
        tls_server_name: The name the server's certificate is checked against, instead of
            the address's host.
        max_message_bytes: The largest message sent or received.
        max_reconnect_delay: The longest wait, in seconds, between two attempts to reach
            the control plane: the channel's own connection backoff stops growing there.
    """

    token: str = ""
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_server_name: str | None = None
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_reconnect_delay: float = DEFAULT_MAX_RECONNECT_DELAY

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **given: Any
    ) -> ChannelSettings:
        """The settings from ``SUREFOOT_TOKEN`` and ``SUREFOOT_TLS_*``; ``given`` values that
        are not None win."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {
            name: environ.get(variable) or None for name, variable in ENVIRONMENT.items()
        }
        values["token"] = values["token"] or ""
        values.update({name: value for name, value in given.items() if value is not None})
        return cls(**values)

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The stream's metadata: the bearer token, if any."""
        token = self.token.strip()
        return (("authorization", f"Bearer {token}"),) if token else ()

    def checked(self) -> CheckedSettings:
        """The settings with their files read.

        Raises:
            ValueError: For a token that cannot travel in a header, options that do not go
                together, a file that cannot be read, or a limit out of range.
        """
        # gRPC refuses other characters in metadata, at the first call and with an error
        # that names no option: say it before anything is sent.
        if not all(33 <= ord(ch) <= 126 for ch in self.token.strip()):
            raise ValueError("--token must be printable ASCII without spaces")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("--tls-cert and --tls-key go together (a client certificate)")
        if self.tls_cert and not self.tls_ca:
            raise ValueError("--tls-cert needs --tls-ca: mutual TLS is TLS first")
        if self.tls_server_name and not self.tls_ca:
            raise ValueError("--tls-server-name needs --tls-ca (it only matters with TLS)")
        if self.max_message_bytes < 64 * 1024:
            raise ValueError(
                f"max_message_bytes must be at least 65536, got {self.max_message_bytes}"
            )
        check_max_reconnect_delay(self.max_reconnect_delay)
        credentials = None
        if self.tls_ca:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read("--tls-ca", self.tls_ca),
                private_key=_read("--tls-key", self.tls_key) if self.tls_key else None,
                certificate_chain=_read("--tls-cert", self.tls_cert) if self.tls_cert else None,
            )
        return CheckedSettings(self, credentials)


def _traced(channel: grpc.Channel) -> grpc.Channel:
    """The client calls traced (a span each, in the caller's trace) when the worker traces its
    handlers (see _tracing.tracer: OTEL_* export or the application's own provider)."""
    from . import _tracing

    if _tracing.tracer() is None:
        return channel
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.grpc import client_interceptor
        from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
    except ImportError:  # the SDK works without opentelemetry-instrumentation-grpc
        return channel
    interceptor = client_interceptor(tracer_provider=trace.get_tracer_provider())
    traced: grpc.Channel = intercept_channel(channel, interceptor)
    return traced


@dataclass(frozen=True)
class CheckedSettings:
    settings: ChannelSettings
    credentials: grpc.ChannelCredentials | None

    def open(self, address: str) -> grpc.aio.Channel:
        """A new asyncio channel to ``address`` (one or several, see `channel_target`); the
        caller closes it."""
        target, host = channel_target(address)
        if self.credentials is None:
            return grpc.aio.insecure_channel(target, options=self._options(host))
        return grpc.aio.secure_channel(target, self.credentials, options=self._options(host))

    def open_blocking(self, address: str) -> grpc.Channel:
        """A new blocking channel to ``address`` (for unary calls from handler threads)."""
        target, host = channel_target(address)
        if self.credentials is None:
            return _traced(grpc.insecure_channel(target, options=self._options(host)))
        return _traced(grpc.secure_channel(target, self.credentials, options=self._options(host)))

    def _options(self, host: str | None = None) -> list[tuple[str, Any]]:
        limit = self.settings.max_message_bytes
        options: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            *reconnect_options(self.settings.max_reconnect_delay),
        ]
        if host is not None:
            # Several addresses, resolved here: the authority is the first one's name, not
            # an IP the server's certificate does not carry.
            options.append(("grpc.default_authority", host))
        server_name = self.settings.tls_server_name or host
        if self.credentials is not None and server_name:
            # The name checked against the server's certificate, when the address is an IP
            # or a load balancer's name the certificate does not carry.
            options.append(("grpc.ssl_target_name_override", server_name))
        return options


def split_addresses(addresses: str | Iterable[str]) -> list[str]:
    """``HOST:PORT`` entries of comma-separated strings (one, or several given repeatedly),
    in order, blanks and repeats dropped.

    Raises:
        ValueError: No address, or an entry that is not ``HOST:PORT``.
    """
    given = [addresses] if isinstance(addresses, str) else list(addresses)
    found: list[str] = []
    for entry in (part.strip() for text in given for part in text.split(",")):
        if not entry:
            continue
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"control plane address {entry!r} is not HOST:PORT")
        if entry not in found:
            found.append(entry)
    if not found:
        raise ValueError("no control plane address given")
    return found


def channel_target(address: str) -> tuple[str, str | None]:
    """The gRPC target for ``address``, and the host name to present as its authority.

    One ``HOST:PORT`` is the target as it is: gRPC's resolver finds every address of a DNS
    name and pick_first tries them in turn (again after a disconnection, re-resolving), so a
    name resolving to several control planes fails over by itself. Several are resolved
    here into one ``ipv4:`` (or ``ipv6:``) target of all their addresses, so that one
    channel fails over between them too; they are shuffled, so that the workers given the
    same list spread over the control planes rather than all landing on the first.
    """
    if "," not in address:
        # As given (a name, an IP, or any target gRPC knows: dns:///, unix:, ipv4:).
        return address.strip(), None
    entries = split_addresses(address)
    if len(entries) == 1:
        return entries[0], None
    v4: list[str] = []
    v6: list[str] = []
    for entry in entries:
        host, _, port = entry.rpartition(":")
        for ip in _resolve(host.strip("[]"), int(port)):
            if ip.version == 4:
                v4.append(f"{ip}:{port}")
            else:
                v6.append(f"[{ip}]:{port}")
    # gRPC takes one family per target; IPv4 when there is any (the common deployment).
    scheme, found = ("ipv4", v4) if v4 else ("ipv6", v6)
    found = list(dict.fromkeys(found))
    random.shuffle(found)
    first_host = entries[0].rpartition(":")[0].strip("[]")
    return f"{scheme}:{','.join(found)}", first_host


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve control plane address {host}: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def reconnect_options(max_reconnect_delay: float) -> list[tuple[str, int]]:
    """The channel options that keep gRPC's connection backoff within `max_reconnect_delay`.

    A channel whose connection attempt failed is in TRANSIENT_FAILURE and fails every call at
    once until its backoff ends, whatever the caller's own loop does: by default 1 s growing
    x1.6 to 120 s, so a worker that lost its control plane for a minute could wait a minute
    more after it came back. Capped here so that the worker's next real attempt is never
    further away than its own. The connect timeout (`grpc.min_reconnect_backoff_ms`, 20 s)
    is left alone: it bounds one attempt that gets no answer, and a TLS handshake over a slow
    link needs more than a second.
    """
    # Divided so that the cap, jitter included, stays within the worker's delay; gRPC waits
    # at least 100 ms whatever it is given.
    cap_ms = max(100, int(max_reconnect_delay * 1000 / (1 + _GRPC_BACKOFF_JITTER)))
    return [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", cap_ms),
    ]


def _read(option: str, path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {option} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise ValueError(f"{option} {path} is not a PEM file")
    return data
