"""Helpers of the bulk run action tests: runs that wait, StartRunAction calls, waits."""

from __future__ import annotations

from typing import Any

import grpc
from surefoot.v1 import definition_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1.operation_service_pb2_grpc import OperationServiceStub
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.runs import Stub, get_run, register, start_run, status_name
from tests.support.workflows import task_node

CALL_TIMEOUT = 30.0
PAUSE = opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE)
RESUME = opb.RunAction(type=opb.RUN_ACTION_TYPE_RESUME)
CANCEL = opb.RunAction(type=opb.RUN_ACTION_TYPE_CANCEL)
ABANDON = opb.RunAction(type=opb.RUN_ACTION_TYPE_ABANDON)


def operations(control_plane: ControlPlane) -> OperationServiceStub:
    return OperationServiceStub(control_plane.channel)


def held(name: str) -> definition_pb2.WorkflowDefinition:
    """A workflow whose runs wait on an approval nobody gives: WAITING until acted on."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [{"id": "sign", "approval": {"title": "sign it"}}],
        }
    )


def prepared_then_held(name: str) -> definition_pb2.WorkflowDefinition:
    """A step on a worker (`prepare`), then an approval nobody gives (`sign`)."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                task_node("prepare", "sign", "{trail: input.trail}"),
                {"id": "sign", "approval": {"title": "sign it"}},
            ],
        }
    )


def start_held_runs(stub: Stub, name: str, count: int) -> list[str]:
    """`count` runs of a held workflow registered as `name`, waiting."""
    register(stub, held(name))
    run_ids = [start_run(stub, name, {"n": i}) for i in range(count)]
    wait_statuses(stub, run_ids, "WAITING")
    return run_ids


def wait_statuses(stub: Stub, run_ids: list[str], status: str, timeout: float = 120.0) -> None:
    def reached() -> bool:
        return all(status_name(get_run(stub, run_id).status) == status for run_id in run_ids)

    assert_eventually(reached, timeout, message=f"{len(run_ids)} runs are {status}")


def by_workflow(name: str, **fields: Any) -> opb.RunSelection:
    return opb.RunSelection(filter=ws.RunFilter(workflow_name=name), **fields)


def start_action(
    control_plane: ControlPlane,
    selection: opb.RunSelection,
    action: opb.RunAction,
    metadata: Any = (),
    **fields: Any,
) -> opb.StartRunActionResponse:
    fields.setdefault("rate_per_second", 100.0)
    request = opb.StartRunActionRequest(selection=selection, action=action, **fields)
    return operations(control_plane).StartRunAction(
        request, timeout=CALL_TIMEOUT, metadata=metadata
    )


def get_operation(control_plane: ControlPlane, operation_id: str) -> opb.Operation:
    request = opb.GetOperationRequest(operation_id=operation_id)
    return operations(control_plane).GetOperation(request, timeout=CALL_TIMEOUT).operation


def wait_done(
    control_plane: ControlPlane, operation_id: str, timeout: float = 120.0
) -> opb.Operation:
    def done() -> opb.Operation | None:
        try:
            operation = get_operation(control_plane, operation_id)
        except grpc.RpcError as exc:
            raise AssertionError(f"GetOperation failed: {exc}") from None
        return operation if operation.done else None

    return assert_eventually(done, timeout, message=f"operation {operation_id} is done")


def items(
    control_plane: ControlPlane,
    operation_id: str,
    state: opb.OperationItemState.ValueType = opb.OPERATION_ITEM_STATE_UNSPECIFIED,
) -> list[opb.OperationItem]:
    found: list[opb.OperationItem] = []
    token = ""
    while True:
        request = opb.ListOperationItemsRequest(
            operation_id=operation_id, state=state, page_size=100, page_token=token
        )
        response = operations(control_plane).ListOperationItems(request, timeout=CALL_TIMEOUT)
        found += response.items
        token = response.next_page_token
        if not token:
            return found


def measured_rate(applied: list[opb.OperationItem]) -> float:
    """Runs acted on per second, from the items' recorded times (commit times)."""
    times = sorted(item.applied_at.ToNanoseconds() / 1e9 for item in applied)
    return (len(times) - 1) / (times[-1] - times[0])
