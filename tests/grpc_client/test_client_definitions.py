"""The generated sync client against a real control plane: registering and reading definitions."""

from __future__ import annotations

from typing import TypedDict

import grpc
import pytest
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.runs import Stub, json_payload
from tests.support.workflows import three_steps

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


def test_a_deprecated_version_refuses_new_runs_and_latest_moves_past_it(grpc_stub: Stub) -> None:
    for version in ("1", "2"):
        definition = three_steps("retiring", version=version)
        grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=definition))
    start_v2 = ws.StartRunRequest(
        workflow_name="retiring", workflow_version="2", input=json_payload({"trail": []})
    )
    grpc_stub.StartRun(start_v2)

    retired = grpc_stub.DeprecateDefinition(
        ws.DeprecateDefinitionRequest(name="retiring", version="2", reason="bad tax rule")
    )
    again = grpc_stub.DeprecateDefinition(
        ws.DeprecateDefinitionRequest(name="retiring", version="2")
    )

    assert retired.changed and not again.changed
    assert retired.info.deprecated and retired.info.deprecation_reason == "bad tax rule"
    assert retired.info.deprecated_by and retired.info.deprecated_at.seconds > 0
    assert retired.info.runs_in_flight == 1
    with pytest.raises(grpc.RpcError) as refused:
        grpc_stub.StartRun(start_v2)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "retiring@2 is deprecated" in (refused.value.details() or "")
    latest = grpc_stub.StartRun(
        ws.StartRunRequest(workflow_name="retiring", input=json_payload({"trail": []}))
    )
    assert latest.workflow_version == "1"

    grpc_stub.DeprecateDefinition(ws.DeprecateDefinitionRequest(name="retiring", version="1"))
    with pytest.raises(grpc.RpcError) as none_left:
        grpc_stub.StartRun(
            ws.StartRunRequest(workflow_name="retiring", input=json_payload({"trail": []}))
        )
    assert none_left.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "every version of retiring is deprecated" in (none_left.value.details() or "")
    with pytest.raises(grpc.RpcError) as unreadable:
        grpc_stub.GetDefinition(ws.GetDefinitionRequest(name="retiring"))
    assert unreadable.value.code() == grpc.StatusCode.NOT_FOUND
    assert "every version of retiring is deprecated" in (unreadable.value.details() or "")
    named = grpc_stub.GetDefinition(ws.GetDefinitionRequest(name="retiring", version="1"))
    assert named.info.deprecated

    reinstated = grpc_stub.DeprecateDefinition(
        ws.DeprecateDefinitionRequest(name="retiring", version="2", reinstate=True)
    )
    assert reinstated.changed and not reinstated.info.deprecated
    assert not reinstated.info.deprecated_by and not reinstated.info.deprecation_reason
    assert grpc_stub.StartRun(start_v2).workflow_version == "2"


class DeprecationFields(TypedDict, total=False):
    """The fields a bad DeprecateDefinitionRequest sets."""

    name: str
    version: str


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"version": "1"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"name": "retiring-bad"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"name": "retiring-bad", "version": "latest"}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"name": "retiring-bad", "version": "9"}, grpc.StatusCode.NOT_FOUND),
    ],
    ids=["no name", "no version", "latest", "unknown version"],
)
def test_bad_deprecations_are_refused_and_change_nothing(
    grpc_stub: Stub, request_fields: DeprecationFields, code: grpc.StatusCode
) -> None:
    definition = three_steps("retiring-bad", version="1")
    grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=definition))

    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.DeprecateDefinition(ws.DeprecateDefinitionRequest(**request_fields))

    assert caught.value.code() == code
    listed = grpc_stub.ListDefinitions(ws.ListDefinitionsRequest(name="retiring-bad"))
    assert [d.deprecated for d in listed.definitions] == [False]
