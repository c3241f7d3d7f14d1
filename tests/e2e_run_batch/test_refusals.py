"""Every refusal of StartRunAction has its precise status, names the offending field, and
writes nothing; a repeated request id with another request is ALREADY_EXISTS."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.auth.auth_support import row_counts
from tests.e2e_run_batch.batch_support import (
    CANCEL,
    PAUSE,
    RESUME,
    by_workflow,
    operations,
    start_action,
    start_held_runs,
    wait_done,
)
from tests.support.processes import ControlPlane
from tests.support.runs import json_payload
from tests.support.waits import field_violations, refusal

FORK = opb.RunAction(type=opb.RUN_ACTION_TYPE_FORK, from_node="sign")


def refused_with(call: Callable[[], object], code: grpc.StatusCode, field: str = "") -> str:
    error = refusal(call)
    assert error.code() == code, error
    if field:
        assert [f for f, _ in field_violations(error)] == [field], error
    return str(error.details())


def stamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


def test_bad_requests_are_refused_with_the_field_and_write_nothing(
    control_plane: ControlPlane, database_url: str
) -> None:
    start_held_runs(control_plane.stub, "refusals", 3)
    service = operations(control_plane)
    before = row_counts(database_url)

    def start(**fields: Any) -> Callable[[], object]:
        fields.setdefault("selection", by_workflow("refusals"))
        fields.setdefault("action", PAUSE)
        fields.setdefault("rate_per_second", 10.0)
        return lambda: service.StartRunAction(opb.StartRunActionRequest(**fields), timeout=30)

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    # No action, an unknown one, fork options on another action, a fork without its node.
    refused_with(start(action=opb.RunAction()), invalid, "action.type")
    refused_with(start(action=opb.RunAction(type=99)), invalid, "action.type")  # type: ignore[arg-type]
    refused_with(start(action=opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE, from_node="a")),
                 invalid, "action.from_node")  # fmt: skip
    refused_with(
        start(
            action=opb.RunAction(type=opb.RUN_ACTION_TYPE_CANCEL, input_override=json_payload(1))
        ),
        invalid,
        "action.input_override",
    )
    refused_with(start(action=opb.RunAction(type=opb.RUN_ACTION_TYPE_FORK)), invalid,
                 "action.from_node")  # fmt: skip
    bad_json = opb.RunAction(
        type=opb.RUN_ACTION_TYPE_FORK,
        from_node="sign",
        input_override=common_pb2.Payload(encoding="json/plain", data=b"{nope"),
    )
    refused_with(start(action=bad_json), invalid, "action.input_override.data")
    # A fork names its workflow: from_node is a node of one workflow.
    refused_with(
        start(action=FORK, selection=opb.RunSelection(run_ids=["abcd"])),
        invalid,
        "selection.filter.workflow_name",
    )
    # Rates.
    for rate in (0.0, -1.0, 1e-300, 0.0009, 10_001.0, math.nan, math.inf):
        refused_with(start(rate_per_second=rate), invalid, "rate_per_second")
    # Selections: an empty one must ask for every run; all_runs alone.
    details = refused_with(start(selection=opb.RunSelection()), invalid, "selection")
    assert "all_runs" in details
    refused_with(
        start(selection=by_workflow("refusals", all_runs=True)), invalid, "selection.all_runs"
    )
    refused_with(
        start(selection=opb.RunSelection(run_ids=["r"] * 10_001)), invalid, "selection.run_ids"
    )
    refused_with(start(selection=opb.RunSelection(run_ids=[""])), invalid, "selection.run_ids")
    refused_with(start(selection=by_workflow("refusals", limit=-1)), invalid, "selection.limit")
    bad_filters = {
        "selection.filter.statuses[0]": ws.RunFilter(statuses=[run_pb2.RUN_STATUS_UNSPECIFIED]),
        "selection.filter.statuses[1]": ws.RunFilter(statuses=[1, 77]),  # type: ignore[list-item]
        "selection.filter.run_id_prefix": ws.RunFilter(run_id_prefix="ab"),
        "selection.filter.created_before": ws.RunFilter(
            created_after=stamp(2_000_000_000), created_before=stamp(1_000_000_000)
        ),
        "selection.filter.created_after": ws.RunFilter(created_after=stamp(10**15)),
    }
    for field, where in bad_filters.items():
        refused_with(start(selection=opb.RunSelection(filter=where)), invalid, field)
    refused_with(start(comment="x" * 2001), invalid, "comment")
    refused_with(start(request_id="r" * 201), invalid, "request_id")
    refused_with(start(namespace="Not Valid"), invalid, "namespace")

    # Nothing to act on: no run matches, or none the action applies to.
    failed = grpc.StatusCode.FAILED_PRECONDITION
    details = refused_with(start(selection=by_workflow("no-such")), failed)
    assert "matches no run" in details
    details = refused_with(start(action=RESUME), failed)
    assert details.endswith("none of the 3 runs selected can be resumed (not paused: 3)")
    # A dry run of them answers, writing nothing.
    plan = start_action(control_plane, by_workflow("no-such"), CANCEL, dry_run=True).plan
    assert (plan.matched, plan.applicable) == (0, 0)
    assert row_counts(database_url) == before

    # A request id names one request: another under it is ALREADY_EXISTS, nothing written.
    first = start_action(control_plane, by_workflow("refusals"), PAUSE, request_id="once")
    wait_done(control_plane, first.operation.id)
    before = row_counts(database_url)
    details = refused_with(start(action=CANCEL, request_id="once"), grpc.StatusCode.ALREADY_EXISTS)
    assert first.operation.id in details
    assert row_counts(database_url) == before
