"""Throwaway CAs and certificates for TLS and mTLS tests (made with the openssl CLI).

`make_tls_files(tmp_path)` gives a CA, a server certificate for localhost/127.0.0.1 and a
second, unrelated CA; `.client(cn)` and `.foreign_client(cn)` sign client certificates with
either. The code lives in the control plane, which `surefoot bench --tls` uses too.
"""

from controlplane.throwaway_certs import (
    SERVER_NAMES,
    Authority,
    KeyPair,
    OpensslError,
    TlsFiles,
    make_authority,
    make_tls_files,
)

__all__ = [
    "SERVER_NAMES",
    "Authority",
    "KeyPair",
    "OpensslError",
    "TlsFiles",
    "make_authority",
    "make_tls_files",
]
