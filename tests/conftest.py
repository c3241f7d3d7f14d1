"""Fixtures of the end-to-end tests: a fresh database per test, real Surefoot processes.

Tests below this folder start the control plane and workers as separate processes, the way
a user runs them, so that a SIGKILL is a real crash. `support/` holds the helpers; this file
only wires them into pytest and makes sure nothing a test started outlives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import database_params, fresh_database
from tests.support.executions import ExecutionLog
from tests.support.processes import (
    EXECUTION_LOG_ENV,
    PROCESSES,
    STEPS_MODULE,
    ControlPlane,
    ProcessRegistry,
    StartWorker,
    WorkerProcess,
    process_environment,
    start_worker,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Attach the output of every process the test started to its failure report."""
    outcome = yield
    report = outcome.get_result()
    registry = item.stash.get(PROCESSES, None)
    if report.failed and registry is not None and registry.processes:
        report.sections.append(("surefoot processes", registry.report()))


@pytest.fixture(params=database_params())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database for this test only, on SQLite and (marked `postgres`) PostgreSQL.

    The same behaviour must hold on both stores, so every end-to-end test runs on each.
    """
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def execution_log(tmp_path: Path) -> ExecutionLog:
    """Where the test steps of every worker process of this test record each execution."""
    return ExecutionLog(tmp_path / "executions.jsonl")


@pytest.fixture
def processes(
    request: pytest.FixtureRequest, tmp_path: Path, execution_log: ExecutionLog
) -> Iterator[ProcessRegistry]:
    """Every subprocess of the test; whatever is still running at teardown is SIGKILLed."""
    registry = ProcessRegistry(
        tmp_path / "processes",
        process_environment(**{EXECUTION_LOG_ENV: str(execution_log.path)}),
    )
    request.node.stash[PROCESSES] = registry
    try:
        yield registry
    finally:
        registry.kill_all()


@pytest.fixture
def control_plane(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """A `surefoot server` subprocess on the test's database, listening on a free port.

    Leases last 2 s so that a lost worker or a crashed control plane shows within seconds.
    Stopped with SIGTERM at teardown, which must end it cleanly.
    """
    server = ControlPlane(processes, database_url, lease_seconds=2.0)
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


@pytest.fixture
def worker(control_plane: ControlPlane, processes: ProcessRegistry) -> Iterator[StartWorker]:
    """Starts `surefoot worker` processes for the test steps (support/steps.py).

    `worker()` connects to the test's control plane (at its current address, which changes
    if it was restarted on another port); `worker(module=..., address=...)` to another.
    The workers are killed before the control plane stops, so that its shutdown does not
    wait for their streams.
    """
    started: list[WorkerProcess] = []

    def start(module: str | Path = STEPS_MODULE, address: str | None = None) -> WorkerProcess:
        process = start_worker(processes, address or control_plane.address, module)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
