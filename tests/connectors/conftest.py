"""Fixtures of the connector tests: real local services and real connector workers.

The in-process tests call the connectors' SDK step handlers directly (with a StepContext
as the worker builds it) against real servers; the end-to-end tests run `surefoot server`
and `surefoot connectors worker` as processes, through the fixtures of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from connector_calls import API_TOKEN, StartConnectorWorker, StepsFor
from connector_servers import FakeApi, SmtpSink
from support.databases import fresh_database
from support.processes import (
    WORKER_CONNECTED,
    ControlPlane,
    ManagedProcess,
    ProcessRegistry,
    surefoot_command,
)
from surefoot_worker import StepDefinition

from controlplane.connectors import ConnectorRuntime, connector_steps
from controlplane.connectors.dedupe import OutcomeStore
from controlplane.connectors.secrets import Secrets
from controlplane.store.migrate import upgrade_database


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


@pytest.fixture
def sqlite_outcomes(tmp_path: Path) -> Iterator[OutcomeStore]:
    """Outcome records in a fresh, migrated SQLite file: enough where the store is not the
    subject of the test (the dedupe tests run on both databases)."""
    with fresh_database("sqlite", tmp_path) as url:
        upgrade_database(url)
        store = OutcomeStore.open(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def outcomes(database_url: str) -> Iterator[OutcomeStore]:
    """Outcome records in a fresh, migrated database, SQLite and (marked) PostgreSQL."""
    upgrade_database(database_url)
    store = OutcomeStore.open(database_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def steps_with(sqlite_outcomes: OutcomeStore) -> StepsFor:
    """The connector steps as a worker builds them, by name, with the given secrets."""

    def build(
        secrets: dict[str, str] | None = None, store: OutcomeStore | None = None
    ) -> dict[str, StepDefinition]:
        values = {"API_TOKEN": API_TOKEN} if secrets is None else secrets
        runtime = ConnectorRuntime(Secrets(values), store or sqlite_outcomes)
        return {step.name: step for step in connector_steps(runtime)}

    return build


@pytest.fixture
def connector_worker(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> Iterator[StartConnectorWorker]:
    """Starts `surefoot connectors worker` processes on the test's control plane and database.

    Each holds the secret `api_token` (SUREFOOT_SECRET_API_TOKEN), plus `env`. Returned once
    the control plane welcomed it; killed before the control plane stops.
    """
    started: list[ManagedProcess] = []

    def start(*extra_args: str, **env: str) -> ManagedProcess:
        args = surefoot_command(
            "connectors",
            "worker",
            "--address",
            control_plane.address,
            "--database-url",
            control_plane.database_url,
            *extra_args,
        )
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
