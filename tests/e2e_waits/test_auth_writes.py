"""On a server with an auth file every call needs a known caller, reads included."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.approval_auth import AuthControlPlane
from tests.support.runs import json_payload, register
from tests.support.waits import refusal
from tests.support.workflows import three_steps


def test_changes_without_a_token_are_unauthenticated_and_write_nothing(
    control_plane: AuthControlPlane,
) -> None:
    register(control_plane.stub, three_steps("guarded"))
    anonymous = control_plane.anonymous_stub
    changes: dict[str, Callable[[], object]] = {
        "register": lambda: anonymous.RegisterDefinition(
            ws.RegisterDefinitionRequest(definition=three_steps("guarded", version="2"))
        ),
        "deprecate": lambda: anonymous.DeprecateDefinition(
            ws.DeprecateDefinitionRequest(name="guarded", version="1")
        ),
        "start": lambda: anonymous.StartRun(
            ws.StartRunRequest(workflow_name="guarded", input=json_payload({"trail": []}))
        ),
        "event": lambda: anonymous.SendEvent(
            apb.SendEventRequest(event_name="paid", correlation_key="o-1")
        ),
    }

    for name, change in changes.items():
        assert refusal(change).code() == grpc.StatusCode.UNAUTHENTICATED, name

    read = refusal(lambda: anonymous.ListDefinitions(ws.ListDefinitionsRequest(name="guarded")))
    assert read.code() == grpc.StatusCode.UNAUTHENTICATED
    listed = control_plane.stub.ListDefinitions(ws.ListDefinitionsRequest(name="guarded"))
    assert [(d.version, d.deprecated, d.runs_in_flight) for d in listed.definitions] == [
        ("1", False, 0)
    ]
