"""Concurrent registrations of one definition name never answer UNKNOWN or INTERNAL.

Each registration takes the next sequence number of its name: from many threads at once
against PostgreSQL (where transactions really overlap), every call answers OK or
ALREADY_EXISTS, each version is stored once, and sequences stay distinct.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.databases import fresh_database
from tests.support.processes import PROCESSES, ControlPlane, ProcessRegistry, process_environment
from tests.support.workflows import three_steps

THREADS = 16


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    directory = tmp_path_factory.mktemp("registration-race")
    with fresh_database("postgres", directory) as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            yield control_plane
            assert control_plane.stop() == 0
        finally:
            registry.kill_all()


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(request: pytest.FixtureRequest, server: ControlPlane) -> None:
    request.node.stash[PROCESSES] = server.registry


def version_of(name: str, version: str, description: str = "") -> definition_pb2.WorkflowDefinition:
    definition = three_steps(name)
    definition.version = version
    definition.description = description
    return definition


def race(
    server: ControlPlane, definitions: list[definition_pb2.WorkflowDefinition]
) -> list[ws.RegisterDefinitionResponse | grpc.RpcError]:
    """Registers all at once, one thread each; each call's response or error."""

    def call(
        definition: definition_pb2.WorkflowDefinition,
    ) -> ws.RegisterDefinitionResponse | grpc.RpcError:
        request = ws.RegisterDefinitionRequest(definition=definition)
        try:
            return server.stub.RegisterDefinition(request, timeout=60)
        except grpc.RpcError as error:
            return error

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(call, definitions))


def codes(outcomes: list[ws.RegisterDefinitionResponse | grpc.RpcError]) -> set[grpc.StatusCode]:
    return {o.code() if isinstance(o, grpc.RpcError) else grpc.StatusCode.OK for o in outcomes}


def stored(server: ControlPlane, name: str) -> list[ws.DefinitionInfo]:
    listed = server.stub.ListDefinitions(ws.ListDefinitionsRequest(name=name), timeout=30)
    return list(listed.definitions)


@pytest.mark.postgres
def test_the_same_content_from_many_threads_is_stored_once(server: ControlPlane) -> None:
    outcomes = race(server, [version_of("race-same", "1") for _ in range(THREADS)])

    assert codes(outcomes) == {grpc.StatusCode.OK}, outcomes
    responses = [o for o in outcomes if isinstance(o, ws.RegisterDefinitionResponse)]
    assert sum(r.created for r in responses) == 1
    assert len({(r.info.content_hash, r.info.sequence) for r in responses}) == 1
    assert [(d.version, d.sequence) for d in stored(server, "race-same")] == [("1", 1)]


@pytest.mark.postgres
def test_other_content_under_one_version_is_already_exists(server: ControlPlane) -> None:
    contents = [version_of("race-other", "1", f"content {i}") for i in range(THREADS)]

    outcomes = race(server, contents)

    assert codes(outcomes) == {grpc.StatusCode.OK, grpc.StatusCode.ALREADY_EXISTS}, outcomes
    created = [o for o in outcomes if isinstance(o, ws.RegisterDefinitionResponse)]
    assert len(created) == 1 and created[0].created
    assert [d.content_hash for d in stored(server, "race-other")] == [created[0].info.content_hash]


@pytest.mark.postgres
def test_new_versions_from_many_threads_each_get_their_own_sequence(
    server: ControlPlane,
) -> None:
    versions = [version_of("race-versions", str(i)) for i in range(1, THREADS + 1)]
    # The same content again among them: an existing version, not another row.
    versions += [version_of("race-versions", "1") for _ in range(4)]

    outcomes = race(server, versions)

    assert codes(outcomes) == {grpc.StatusCode.OK}, outcomes
    rows = stored(server, "race-versions")
    assert sorted(int(d.version) for d in rows) == list(range(1, THREADS + 1))
    assert sorted(d.sequence for d in rows) == list(range(1, THREADS + 1))
