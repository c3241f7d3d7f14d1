"""Throwaway certificate authorities and certificates, for `surefoot bench --tls` and tests.

Everything is made by the `openssl` command line (as an operator would, and as the README's
production section shows) with EC P-256 keys, which take milliseconds, into a directory the
caller owns. Nothing here is fit for production: keys are unencrypted and live for two days.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The SANs a test server answers to: clients dial 127.0.0.1 or localhost.
SERVER_NAMES: tuple[str, ...] = ("DNS:localhost", "IP:127.0.0.1", "IP:::1")
_DAYS = "2"
_CURVE = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")

# A config of our own, so the machine's openssl.cnf cannot add or duplicate extensions.
_REQ_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
"""


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its unencrypted PEM private key."""

    cert: Path
    key: Path

    def cert_bytes(self) -> bytes:
        return self.cert.read_bytes()

    def key_bytes(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Authority:
    """A self-signed CA that can sign server and client certificates."""

    name: str
    directory: Path
    pair: KeyPair

    @property
    def cert(self) -> Path:
        """The CA bundle a client (or an mTLS server) trusts."""
        return self.pair.cert

    def server(self, name: str = "server", sans: tuple[str, ...] = SERVER_NAMES) -> KeyPair:
        """A server certificate (CN `name`) valid for `sans` (openssl `subjectAltName` items)."""
        return _sign(self, name, sans=sans, usage="serverAuth")

    def client(self, common_name: str) -> KeyPair:
        """A client certificate whose subject CN is `common_name` (the mTLS principal key)."""
        return _sign(self, common_name, sans=(), usage="clientAuth")


@dataclass(frozen=True)
class TlsFiles:
    """A CA with a server certificate for localhost, and a second CA that nobody trusts."""

    ca: Authority
    server: KeyPair
    other_ca: Authority

    def client(self, common_name: str) -> KeyPair:
        """A client certificate signed by the trusted CA."""
        return self.ca.client(common_name)

    def foreign_client(self, common_name: str) -> KeyPair:
        """A client certificate signed by the unrelated CA (must be refused by mTLS)."""
        return self.other_ca.client(common_name)


def make_tls_files(directory: Path) -> TlsFiles:
    """Make a CA, a localhost server certificate and an unrelated second CA under `directory`."""
    ca = make_authority(directory / "ca", "Surefoot Test CA")
    other = make_authority(directory / "other-ca", "Unrelated Test CA")
    return TlsFiles(ca=ca, server=ca.server(), other_ca=other)


def make_authority(directory: Path, name: str) -> Authority:
    """A self-signed CA (cert + key) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    config = _write_config(directory / "ca.cnf", name, extensions=_CA_EXTENSIONS)
    pair = KeyPair(cert=directory / "ca.crt", key=directory / "ca.key")
    _openssl(
        "req", "-x509", "-config", str(config), "-extensions", "ext", *_CURVE,
        "-keyout", str(pair.key), "-out", str(pair.cert), "-days", _DAYS,
    )  # fmt: skip
    return Authority(name=name, directory=directory, pair=pair)


_CA_EXTENSIONS = """\
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _sign(ca: Authority, common_name: str, sans: tuple[str, ...], usage: str) -> KeyPair:
    stem = ca.directory / _file_stem(common_name)
    extensions = (
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        f"extendedKeyUsage = {usage}\n"
        "authorityKeyIdentifier = keyid\n"
    )
    if sans:
        extensions += f"subjectAltName = {', '.join(sans)}\n"
    config = _write_config(stem.with_suffix(".cnf"), common_name, extensions=extensions)
    pair = KeyPair(cert=stem.with_suffix(".crt"), key=stem.with_suffix(".key"))
    csr = stem.with_suffix(".csr")
    _openssl(
        "req", "-new", "-config", str(config), *_CURVE, "-keyout", str(pair.key), "-out", str(csr)
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.pair.cert), "-CAkey", str(ca.pair.key),
        "-set_serial", str(secrets.randbits(63)), "-days", _DAYS,
        "-extfile", str(config), "-extensions", "ext", "-out", str(pair.cert),
    )  # fmt: skip
    return pair


def _write_config(path: Path, common_name: str, extensions: str) -> Path:
    path.write_text(f"{_REQ_CONFIG}CN = {common_name}\n[ext]\n{extensions}")
    return path


def _file_stem(common_name: str) -> str:
    """A file name from a CN; a random suffix lets a test sign the same CN twice."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in common_name)
    return f"{safe}-{secrets.token_hex(3)}"


class OpensslError(RuntimeError):
    """openssl is missing or refused a command."""


def _openssl(*args: str) -> None:
    try:
        result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise OpensslError("the openssl command is needed to make certificates") from None
    if result.returncode != 0:
        raise OpensslError(f"openssl {args[0]} failed: {result.stderr.strip()}")
