"""Fixtures of the TLS tests: a throwaway CA and `surefoot server` processes listening with TLS.

What is tested is the transport, which does not depend on the store: SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database
from tests.support.processes import ProcessRegistry
from tests.support.tls import TlsFiles, make_tls_files
from tests.tls.tls_support import TlsControlPlane


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new SQLite database for this test only (replaces the fixture of tests/conftest.py)."""
    with fresh_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tls_files: TlsFiles
) -> Iterator[TlsControlPlane]:
    """`surefoot server --tls-cert --tls-key`: TLS, no client certificate asked for."""
    server = TlsControlPlane(processes, database_url, tls_files)
    server.start()
    yield server
    assert server.stop() in (0, None)


@pytest.fixture
def mtls_control_plane(
    database_url: str, processes: ProcessRegistry, tls_files: TlsFiles
) -> Iterator[TlsControlPlane]:
    """The same with `--tls-client-ca`: only clients with a certificate of the CA get in."""
    server = TlsControlPlane(processes, database_url, tls_files, mutual=True)
    server.start()
    yield server
    assert server.stop() in (0, None)
