"""Every refusal of OperationService (and of the dead-letter groups' paging) has its precise
status, names the offending field, and writes nothing: no operation, no item, no retry."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    REDRIVE_STEPS,
    dead_letter_outage,
    operations,
    start_redrive,
    wait_done,
)
from tests.support.processes import ControlPlane, StartWorker
from tests.support.waits import field_violations, refusal

BY_WORKFLOW = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="refusals"))


def refused_with(call: Callable[[], object], code: grpc.StatusCode, field: str = "") -> str:
    error = refusal(call)
    assert error.code() == code, error
    if field:
        assert [f for f, _ in field_violations(error)] == [field], error
    return str(error.details())


def test_bad_requests_are_refused_with_the_field_and_write_nothing(
    control_plane: ControlPlane,
    worker: StartWorker,
    payment_api: OutagePaymentApi,
    database_url: str,
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    dead_letter_outage(stub, payment_api, "refusals", 2)
    dead_letter_outage(stub, payment_api, "refusals-unsafe", 1, "redrive-transfer")
    service = operations(control_plane)
    before = row_counts(database_url)

    def start(**fields: Any) -> Callable[[], object]:
        fields.setdefault("selection", BY_WORKFLOW)
        fields.setdefault("rate_per_second", 10.0)
        return lambda: service.StartRedrive(opb.StartRedriveRequest(**fields), timeout=30)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    refused_with(start(selection=opb.RedriveSelection()), invalid, "selection")
    # 1e-300 a second would make the expected duration infinite (it answered INTERNAL).
    for rate in (0.0, -1.0, 1e-300, 0.0009, 10_001.0, math.nan, math.inf):
        refused_with(start(rate_per_second=rate), invalid, "rate_per_second")
    refused_with(start(comment="x" * 2001), invalid, "comment")
    refused_with(start(request_id="r" * 201), invalid, "request_id")
    refused_with(start(namespace="Not Valid"), invalid, "namespace")
    refused_with(
        start(selection=opb.RedriveSelection(run_ids=["r"] * 10_001)), invalid, "selection.run_ids"
    )
    refused_with(start(selection=opb.RedriveSelection(run_ids=[""])), invalid, "selection.run_ids")
    refused_with(
        start(selection=opb.RedriveSelection(filter=BY_WORKFLOW.filter, limit=-1)),
        invalid,
        "selection.limit",
    )
    # Nothing to redrive: no match, or only steps that may have happened.
    nothing = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="no-such"))
    details = refused_with(start(selection=nothing), grpc.StatusCode.FAILED_PRECONDITION)
    assert "matches no dead letter" in details
    only_unsafe = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="refusals-unsafe"))
    details = refused_with(start(selection=only_unsafe), grpc.StatusCode.FAILED_PRECONDITION)
    assert "include_unsafe" in details

    # Reading and cancelling.
    get = service.GetOperation
    refused_with(lambda: get(opb.GetOperationRequest(), timeout=30), invalid, "operation_id")
    not_found = grpc.StatusCode.NOT_FOUND
    refused_with(lambda: get(opb.GetOperationRequest(operation_id="nope"), timeout=30), not_found)
    refused_with(
        lambda: list(service.WatchOperation(opb.WatchOperationRequest(operation_id="nope"))),
        not_found,
    )
    refused_with(
        lambda: service.CancelOperation(
            opb.CancelOperationRequest(operation_id="nope"), timeout=30
        ),
        not_found,
    )
    items = service.ListOperationItems
    refused_with(
        lambda: items(opb.ListOperationItemsRequest(operation_id="nope"), timeout=30), not_found
    )
    refused_with(
        lambda: service.ListOperations(opb.ListOperationsRequest(page_size=1001), timeout=30),
        invalid,
        "page_size",
    )
    refused_with(
        lambda: service.ListOperations(opb.ListOperationsRequest(page_token="junk"), timeout=30),
        invalid,
        "page_token",
    )
    refused_with(
        lambda: stub.ListDeadLetters(
            ws.ListDeadLettersRequest(grouped=True, page_token="junk"), timeout=30
        ),
        invalid,
        "page_token",
    )
    assert row_counts(database_url) == before

    # A completed operation cannot be cancelled; an item listing with a bad state is refused.
    payment_api.recover()
    operation = start_redrive(control_plane, BY_WORKFLOW, rate_per_second=100.0).operation
    wait_done(control_plane, operation.id)
    before = row_counts(database_url)
    details = refused_with(
        lambda: service.CancelOperation(
            opb.CancelOperationRequest(operation_id=operation.id), timeout=30
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
    )
    assert "completed" in details
    refused_with(
        lambda: items(
            opb.ListOperationItemsRequest(
                operation_id=operation.id, state=opb.OperationItemState.ValueType(99)
            ),
            timeout=30,
        ),
        invalid,
        "state",
    )
    refused_with(
        lambda: items(
            opb.ListOperationItemsRequest(operation_id=operation.id, page_token="!!"), timeout=30
        ),
        invalid,
        "page_token",
    )
    refused_with(
        lambda: service.CancelOperation(
            opb.CancelOperationRequest(operation_id=operation.id, reason="x" * 2001), timeout=30
        ),
        invalid,
        "reason",
    )
    assert row_counts(database_url) == before
