"""Fixtures of the connector tests: real local services and real connector workers.

The in-process tests call the connectors' SDK step handlers directly (with a StepContext
as the worker builds it) against real servers; the end-to-end tests run `surefoot server`
and `surefoot connectors worker` as processes, through the fixtures of tests/conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot_connectors import ConnectorRuntime, connector_steps
from surefoot_connectors.secrets import Secrets
from surefoot_worker import StepDefinition

from tests.connectors.connector_calls import API_TOKEN, StartConnectorWorker, StepsFor
from tests.connectors.connector_servers import FakeApi, SmtpSink
from tests.connectors.outcome_plane import InProcessControlPlane, OutcomeLedger, control_plane_on
from tests.support.databases import fresh_database
from tests.support.processes import (
    WORKER_CONNECTED,
    ControlPlane,
    ManagedProcess,
    ProcessRegistry,
    surefoot_command,
)

CRASHING_WORKER = Path(__file__).with_name("crashing_connector_worker.py")


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    """An HTTP API on a free port whose answers each test scripts per path."""
    api = FakeApi().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP server on a free port that keeps the messages it accepts."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def sqlite_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessControlPlane]:
    """One in-process control plane on SQLite for the tests whose subject is not the store:
    each test's runs (and so its records) are its own."""
    with (
        fresh_database("sqlite", tmp_path_factory.mktemp("outcomes")) as url,
        control_plane_on(url) as plane,
    ):
        yield plane


@pytest.fixture
def sqlite_outcomes(sqlite_plane: InProcessControlPlane) -> Iterator[OutcomeLedger]:
    """Outcome records kept by the shared SQLite control plane, for this test's runs."""
    ledger = OutcomeLedger(sqlite_plane)
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def outcomes(database_url: str) -> Iterator[OutcomeLedger]:
    """Outcome records kept by a control plane on a fresh database, SQLite and (marked)
    PostgreSQL: the dedupe tests' subject is the store, so they run on both."""
    with control_plane_on(database_url) as plane:
        ledger = OutcomeLedger(plane)
        try:
            yield ledger
        finally:
            ledger.close()


@pytest.fixture
def steps_with(sqlite_outcomes: OutcomeLedger) -> StepsFor:
    """The connector steps as a worker builds them, by name, with the given secrets."""

    def build(
        secrets: dict[str, str] | None = None, store: OutcomeLedger | None = None
    ) -> dict[str, StepDefinition]:
        values = {"API_TOKEN": API_TOKEN} if secrets is None else secrets
        runtime = ConnectorRuntime(Secrets(values), (store or sqlite_outcomes).client)
        return {step.name: step for step in connector_steps(runtime)}

    return build


@pytest.fixture
def connector_worker(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> Iterator[StartConnectorWorker]:
    """Starts `surefoot connectors worker` processes on the test's control plane.

    Each holds the secret `api_token` (SUREFOOT_SECRET_API_TOKEN), plus `env`. Returned once
    the control plane welcomed it; killed before the control plane stops. With
    `crash_once_recorded`, it SIGKILLs itself as soon as it has recorded a call's outcome
    (crashing_connector_worker.py).
    """
    started: list[ManagedProcess] = []

    def start(*extra_args: str, crash_once_recorded: bool = False, **env: str) -> ManagedProcess:
        args = surefoot_command(
            "connectors",
            "worker",
            "--address",
            control_plane.address,
            *extra_args,
        )
        if crash_once_recorded:
            args = [sys.executable, str(CRASHING_WORKER), control_plane.address, *extra_args]
        environment = {**processes.env, "SUREFOOT_SECRET_API_TOKEN": API_TOKEN, **env}
        name = f"{len(processes.processes) + 1:02d}-connector-worker"
        process = ManagedProcess(name, args, processes.log_dir, environment)
        processes.processes.append(process)
        started.append(process)
        process.wait_for_stdout(WORKER_CONNECTED)
        return process

    yield start
    for process in started:
        process.kill()
