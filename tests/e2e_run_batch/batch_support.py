"""Helpers of the bulk run action tests: runs that wait, StartRunAction calls, waits."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import definition_pb2
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.operations import (  # noqa: F401  (the tests import them from here)
    get_operation,
    items,
    operations,
    wait_done,
    wait_statuses,
)
from tests.support.processes import ControlPlane
from tests.support.runs import Stub, register, start_run
from tests.support.workflows import task_node

CALL_TIMEOUT = 30.0
PAUSE = opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE)
RESUME = opb.RunAction(type=opb.RUN_ACTION_TYPE_RESUME)
CANCEL = opb.RunAction(type=opb.RUN_ACTION_TYPE_CANCEL)
ABANDON = opb.RunAction(type=opb.RUN_ACTION_TYPE_ABANDON)


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


def measured_rate(applied: list[opb.OperationItem]) -> float:
    """Runs acted on per second, from the items' recorded times (commit times)."""
    times = sorted(item.applied_at.ToNanoseconds() / 1e9 for item in applied)
    return (len(times) - 1) / (times[-1] - times[0])
