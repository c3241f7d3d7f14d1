"""Fixtures of the trust tests: PostgreSQL only (the production store), a control plane that
requires credentials (auth_support.py), started once per module to keep the folder quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auth.auth_support import SecuredControlPlane, write_auth_file
from tests.support.databases import fresh_database
from tests.support.processes import ProcessRegistry, process_environment


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="module")
def secured_database(module_dir: Path) -> Iterator[str]:
    with fresh_database("postgres", module_dir) as url:
        yield url


@pytest.fixture(scope="module")
def module_processes(module_dir: Path) -> Iterator[ProcessRegistry]:
    registry = ProcessRegistry(module_dir / "processes", process_environment())
    try:
        yield registry
    finally:
        registry.kill_all()


@pytest.fixture(scope="module")
def secured(
    secured_database: str, module_processes: ProcessRegistry, module_dir: Path
) -> Iterator[SecuredControlPlane]:
    """`surefoot server --auth-file` (no --no-auth) on a fresh PostgreSQL database."""
    server = SecuredControlPlane(
        module_processes, secured_database, write_auth_file(module_dir / "auth.yaml")
    )
    server.start()
    yield server
    assert server.stop() in (0, None)
