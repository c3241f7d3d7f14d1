"""Fixtures of the console tests: the real app, headless, against real Surefoot processes.

The console is a pure gRPC client, so what it shows does not depend on the store: these tests
run on SQLite only, which keeps the folder quick (the stores are compared elsewhere).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_database


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A new SQLite database for this test only (replaces the fixture of tests/conftest.py)."""
    with fresh_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def unused_address() -> str:
    """An address nothing listens on: a port the OS just handed out and that was closed again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"
