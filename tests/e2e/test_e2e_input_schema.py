"""A workflow may declare a JSON Schema for its input: StartRun with input that does not
validate is refused with INVALID_ARGUMENT and the schema error, and no run is created; a bad
schema is refused at registration."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.processes import ControlPlane, StartWorker
from tests.support.rich_status import rich_status
from tests.support.runs import json_payload, list_runs, register, wait_for_status
from tests.support.workflows import three_steps

SCHEMA = {
    "type": "object",
    "properties": {"trail": {"type": "array"}, "amount": {"type": "number", "minimum": 1}},
    "required": ["trail", "amount"],
}


def test_run_input_is_checked_against_the_declared_schema(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    definition = three_steps("typed")
    definition.input_schema_json = json.dumps(SCHEMA)
    register(stub, definition)
    worker()

    for bad, needle in (
        (json_payload({"trail": []}), "amount"),
        (json_payload({"trail": [], "amount": 0}), "minimum"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartRun(
                ws.StartRunRequest(workflow_name="typed", input=bad, request_id=f"r-{needle}"),
                timeout=30,
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert needle in (refused.value.details() or "")
        assert "input schema" in (refused.value.details() or "")
    assert list_runs(stub) == []

    # Every problem at once, each with where it is in the input.
    with pytest.raises(grpc.RpcError) as refused:
        stub.StartRun(
            ws.StartRunRequest(
                workflow_name="typed", input=json_payload({"trail": 7, "amount": -1})
            ),
            timeout=30,
        )
    status = rich_status(refused.value)
    assert status is not None
    [detail] = status.details
    bad_request = error_details_pb2.BadRequest()
    detail.Unpack(bad_request)
    fields = sorted((v.field, v.description) for v in bad_request.field_violations)
    assert [f for f, _ in fields] == ["input.amount", "input.trail"]
    assert "minimum" in fields[0][1] and "array" in fields[1][1]
    assert "(and 1 more)" in (refused.value.details() or "")
    assert list_runs(stub) == []

    good = stub.StartRun(
        ws.StartRunRequest(workflow_name="typed", input=json_payload({"trail": [], "amount": 5})),
        timeout=30,
    )
    wait_for_status(stub, good.run_id, "COMPLETED")
    assert [r.id for r in list_runs(stub)] == [good.run_id]


def test_a_schema_that_is_not_json_schema_is_refused_and_nothing_stored(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    definition = three_steps("badly-typed")
    definition.input_schema_json = json.dumps({"type": "no-such-type"})
    with pytest.raises(grpc.RpcError) as refused:
        stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=definition), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rich_status(refused.value)
    assert status is not None
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    [violation] = bad_request.field_violations
    assert violation.field == "definition.input_schema_json"
    assert "not a valid JSON Schema" in violation.description
    listed = stub.ListDefinitions(ws.ListDefinitionsRequest(), timeout=30)
    assert list(listed.definitions) == []
