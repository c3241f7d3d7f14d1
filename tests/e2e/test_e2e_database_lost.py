"""A control plane whose database is gone answers UNAVAILABLE (retry later), never UNKNOWN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.databases import ADMIN_URL, fresh_database
from tests.support.processes import PROCESSES, ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register
from tests.support.waits import refusal
from tests.support.workflows import three_steps


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ControlPlane]:
    with fresh_database("postgres", tmp_path) as url:
        registry = ProcessRegistry(tmp_path / "processes", process_environment())
        request.node.stash[PROCESSES] = registry
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            yield control_plane
        finally:
            registry.kill_all()


@pytest.mark.postgres
def test_reads_after_the_database_is_dropped_are_unavailable(server: ControlPlane) -> None:
    register(server.stub, three_steps("before-the-loss"))
    name = make_url(server.database_url).database
    assert name is not None
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))

    calls = {
        "GetRun": lambda: server.stub.GetRun(ws.GetRunRequest(run_id="any"), timeout=30),
        "ListDefinitions": lambda: server.stub.ListDefinitions(
            ws.ListDefinitionsRequest(), timeout=30
        ),
    }

    codes = {name: refusal(call).code() for name, call in calls.items()}

    assert codes == dict.fromkeys(calls, grpc.StatusCode.UNAVAILABLE)
