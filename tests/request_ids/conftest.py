"""One control plane that requires credentials, on PostgreSQL, for the whole folder: the
request-id tests each make their own runs, so they share a server to stay quick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.approval_auth import AuthControlPlane, write_auth_file
from tests.support.databases import fresh_database
from tests.support.executions import ExecutionLog
from tests.support.processes import (
    EXECUTION_LOG_ENV,
    STEPS_MODULE,
    ProcessRegistry,
    WorkerProcess,
    process_environment,
    start_worker,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("request_ids")


@pytest.fixture(scope="module")
def module_processes(module_dir: Path) -> Iterator[ProcessRegistry]:
    log = ExecutionLog(module_dir / "executions.jsonl")
    registry = ProcessRegistry(
        module_dir / "processes", process_environment(**{EXECUTION_LOG_ENV: str(log.path)})
    )
    try:
        yield registry
    finally:
        registry.kill_all()


@pytest.fixture(scope="module")
def server(module_dir: Path, module_processes: ProcessRegistry) -> Iterator[AuthControlPlane]:
    with fresh_database("postgres", module_dir) as url:
        plane = AuthControlPlane(module_processes, url, write_auth_file(module_dir / "auth.yaml"))
        plane.start()
        yield plane
        plane.stop()


@pytest.fixture(scope="module")
def steps_worker(
    server: AuthControlPlane, module_processes: ProcessRegistry
) -> Iterator[WorkerProcess]:
    process = start_worker(module_processes, server.address, STEPS_MODULE)
    yield process
    process.kill()
