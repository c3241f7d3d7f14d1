"""Fixtures of the tests of waiting runs: a control plane that knows bearer tokens.

Deciding an approval needs an authenticated principal, so every control plane of this
folder is started with an auth file (support/approval_auth.py). `control_plane` replaces
the one of tests/conftest.py, so that its `worker` fixture connects workers to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.approval_auth import AuthControlPlane, write_auth_file
from tests.support.processes import ProcessRegistry


@pytest.fixture
def control_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """A control plane on the test's database with the tokens of support/approval_auth.py.

    Leases last 2 s, as in tests/conftest.py. Stopped with SIGTERM, which must end it cleanly.
    """
    server = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"
