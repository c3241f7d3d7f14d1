"""Durable operations as the tests follow them through OperationService: get one, wait for it
to be done, list its items; and runs waited into a status (redrives and run actions alike)."""

from __future__ import annotations

import grpc
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1.operation_service_pb2_grpc import OperationServiceStub

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane
from tests.support.runs import CALL_TIMEOUT, Stub, get_run, status_name


def operations(control_plane: ControlPlane) -> OperationServiceStub:
    return OperationServiceStub(control_plane.channel)


def wait_statuses(stub: Stub, run_ids: list[str], status: str, timeout: float = 120.0) -> None:
    def reached() -> bool:
        return all(status_name(get_run(stub, run_id).status) == status for run_id in run_ids)

    assert_eventually(reached, timeout, message=f"{len(run_ids)} runs are {status}")


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
