"""The generated sync client against a real control plane: registering and reading definitions."""

from __future__ import annotations

import grpc
import pytest
from support.runs import Stub, json_payload
from support.workflows import three_steps
from surefoot.v1 import workflow_service_pb2 as ws

pytestmark = pytest.mark.postgres


def test_register_get_and_list_definitions(grpc_stub: Stub) -> None:
    first = three_steps("client-orders", version="1")
    second = three_steps("client-orders", version="2")
    second.description = "version 2"

    registered = grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=first))
    again = grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=first))
    newer = grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=second))

    assert registered.created and not again.created and newer.created
    info = registered.info
    assert (info.namespace, info.name, info.version) == ("default", "client-orders", "1")
    assert info.content_hash and again.info.content_hash == info.content_hash
    assert newer.info.content_hash != info.content_hash
    assert newer.info.sequence > info.sequence

    got = grpc_stub.GetDefinition(ws.GetDefinitionRequest(name="client-orders", version="1"))
    assert got.definition == first
    assert got.info.content_hash == info.content_hash
    latest = grpc_stub.GetDefinition(ws.GetDefinitionRequest(name="client-orders"))
    assert latest.info.version == "2"
    assert latest.definition.description == "version 2"

    listed = grpc_stub.ListDefinitions(ws.ListDefinitionsRequest(name="client-orders"))
    assert sorted(d.version for d in listed.definitions) == ["1", "2"]
    everything = grpc_stub.ListDefinitions(ws.ListDefinitionsRequest())
    assert {"client-orders"} <= {d.name for d in everything.definitions}


def test_definition_lists_its_runs_in_flight(grpc_stub: Stub) -> None:
    grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=three_steps("counted")))
    for _ in range(2):
        grpc_stub.StartRun(
            ws.StartRunRequest(workflow_name="counted", input=json_payload({"trail": []}))
        )

    listed = grpc_stub.ListDefinitions(ws.ListDefinitionsRequest(name="counted"))

    assert [d.runs_in_flight for d in listed.definitions] == [2]


def test_get_of_an_unknown_definition_is_not_found(grpc_stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.GetDefinition(ws.GetDefinitionRequest(name="never-registered"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
