"""pytest-grpc's fixtures, pointed at a real control plane instead of an in-process servicer.

pytest-grpc builds `grpc_channel` and `grpc_stub` from `grpc_addr` and `grpc_server`; here
`grpc_server` is a `surefoot server` subprocess on a fresh PostgreSQL database (module scope,
as pytest-grpc's fixtures are), and `grpc_addr` is where it listens. The tests therefore use
the generated sync client exactly as a user's program would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from surefoot.v1 import workflow_service_pb2_grpc

from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.processes import PROCESSES, ControlPlane, ProcessRegistry, process_environment


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    require_postgres()
    directory = tmp_path_factory.mktemp("grpc-client")
    with fresh_postgres_database() as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            yield control_plane
            assert control_plane.stop() == 0
        finally:
            registry.kill_all()


@pytest.fixture(scope="module")
def grpc_addr(grpc_server: ControlPlane) -> str:
    return grpc_server.address


@pytest.fixture(scope="module")
def grpc_stub_cls() -> type[workflow_service_pb2_grpc.WorkflowServiceStub]:
    return workflow_service_pb2_grpc.WorkflowServiceStub


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(
    request: pytest.FixtureRequest, grpc_server: ControlPlane
) -> None:
    request.node.stash[PROCESSES] = grpc_server.registry
