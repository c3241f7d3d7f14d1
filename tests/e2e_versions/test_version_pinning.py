"""Acceptance: two versions of a workflow run side by side, across a control-plane crash.

Law 6: a run is pinned to the version it started on until it ends. Runs of `X@1` wait on an
approval and on a sleep; `X@2` (an extra step, another input) is registered while they wait
and the control plane is SIGKILLed and started again. New runs take `X@2`, both versions
have runs in flight, and when the waits end each run finishes on its own version's graph.
A deprecated version then refuses new runs and creates nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import grpc
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, AuthControlPlane
from tests.support.executions import ExecutionLog
from tests.support.processes import StartWorker
from tests.support.runs import (
    CALL_TIMEOUT,
    Stub,
    assert_history_well_formed,
    events_of,
    get_run,
    history,
    json_payload,
    list_runs,
    payload_value,
    register,
    status_name,
    wait_for_status,
)
from tests.support.waits import decide, refusal
from tests.support.workflows import task_node

NAME = "pinned"
# Long enough that a sleep started before the crash is usually still pending after the
# restart; the test holds either way (a sleep that came due while no control plane ran
# fires as soon as one is back).
SLEEP_SECONDS = 5.0
V1_NODES = {"route", "ask", "nap", "work"}
V2_NODES = V1_NODES | {"audit"}
OPEN = {"RUNNING", "WAITING", "NEEDS_ATTENTION", "COMPENSATING"}


def pinned(version: str) -> definition_pb2.WorkflowDefinition:
    """Waits on an approval or a sleep (as the input says), then works; 2 also audits."""
    extra = version == "2"
    nodes: list[dict[str, Any]] = [
        {
            "id": "route",
            "switch": {
                "cases": [{"condition": "input.wait == 'sleep'", "next": "nap"}],
                "default_next": "ask",
            },
        },
        {
            "id": "ask",
            "next": "work",
            "approval": {"title": f"Ship on version {version}?", "approvers": ["group:managers"]},
        },
        {"id": "nap", "next": "work", "sleep": {"until": "input.until"}},
        task_node("work", "audit" if extra else None, f"{{trail: ['v{version}']}}"),
    ]
    if extra:
        nodes.append(task_node("audit", None, "{trail: steps.work.output.trail}"))
    return definition_from_dict({"name": NAME, "version": version, "nodes": nodes})


APPROVAL = {"wait": "approval"}


def sleep_input() -> dict[str, str]:
    """The input of a run that sleeps SLEEP_SECONDS from now."""
    until = datetime.fromtimestamp(time.time() + SLEEP_SECONDS, UTC).isoformat()
    return {"wait": "sleep", "until": until}


def start(stub: Stub, value: Any, version: str = "") -> ws.StartRunResponse:
    request = ws.StartRunRequest(
        workflow_name=NAME, workflow_version=version, input=json_payload(value)
    )
    return stub.StartRun(request, timeout=CALL_TIMEOUT)


def runs_in_flight(stub: Stub) -> dict[str, int]:
    listed = stub.ListDefinitions(ws.ListDefinitionsRequest(name=NAME), timeout=CALL_TIMEOUT)
    return {d.version: d.runs_in_flight for d in listed.definitions}


def open_runs(stub: Stub, run_ids: list[str]) -> int:
    return sum(status_name(get_run(stub, run_id).status) in OPEN for run_id in run_ids)


def test_runs_finish_on_the_version_they_started_on_across_a_restart(
    control_plane: AuthControlPlane, worker: StartWorker, execution_log: ExecutionLog
) -> None:
    first = register(control_plane.stub, pinned("1"))
    worker()
    responses = [start(control_plane.stub, APPROVAL), start(control_plane.stub, sleep_input())]
    assert [r.workflow_version for r in responses] == ["1", "1"]
    v1_approval, v1_sleep = (r.run_id for r in responses)
    for run_id in (v1_approval, v1_sleep):
        wait_for_status(control_plane.stub, run_id, "WAITING")

    second = register(control_plane.stub, pinned("2"))
    assert second.created and second.info.content_hash != first.info.content_hash
    assert second.info.sequence > first.info.sequence

    control_plane.kill()
    control_plane.restart()
    stub = control_plane.stub

    # Without a version, a run takes the newest: 2, which the restarted process read back.
    responses = [start(stub, APPROVAL), start(stub, sleep_input())]
    assert [r.workflow_version for r in responses] == ["2", "2"]
    v2_approval, v2_sleep = (r.run_id for r in responses)
    for run_id in (v2_approval, v2_sleep):
        wait_for_status(stub, run_id, "WAITING")
    v1_runs, v2_runs = [v1_approval, v1_sleep], [v2_approval, v2_sleep]

    # Both versions have runs in flight at once. A sleep may fire meanwhile, so the count
    # lies between the runs open after the listing and those open before it.
    open_before = {"1": open_runs(stub, v1_runs), "2": open_runs(stub, v2_runs)}
    in_flight = runs_in_flight(stub)
    open_after = {"1": open_runs(stub, v1_runs), "2": open_runs(stub, v2_runs)}
    for version in ("1", "2"):
        assert open_after[version] <= in_flight[version] <= open_before[version], in_flight
        # The approval runs cannot have ended: nobody decided yet.
        assert open_after[version] >= 1
    assert status_name(get_run(stub, v1_approval).status) == "WAITING"

    for run_id in (v1_approval, v2_approval):
        decide(stub, f"{run_id}:ask", True, "ship it", token=ALICE)
    done = {
        run_id: wait_for_status(stub, run_id, "COMPLETED", timeout=SLEEP_SECONDS + 60)
        for run_id in v1_runs + v2_runs
    }

    for run_id in v1_runs:
        assert_finished_on(stub, run_id, done[run_id], "1", ["v1", "work"], V1_NODES)
    for run_id in v2_runs:
        assert_finished_on(stub, run_id, done[run_id], "2", ["v2", "work", "audit"], V2_NODES)
    # The extra step of version 2 ran for the runs of version 2 only.
    assert sorted(e.run_id for e in execution_log.started() if e.node_id == "audit") == sorted(
        v2_runs
    )
    assert events_of(history(stub, v1_sleep), "SLEEP_FIRED", "nap")
    assert runs_in_flight(stub) == {"1": 0, "2": 0}

    assert_deprecated_version_refuses_new_runs(stub)


def assert_finished_on(
    stub: Stub,
    run_id: str,
    run: Any,
    version: str,
    trail: list[str],
    nodes: set[str],
) -> None:
    assert run.workflow_version == version, run
    assert payload_value(run.output)["trail"] == trail
    events = history(stub, run_id)
    assert_history_well_formed(events)
    touched = {e.node_id for e in events if e.node_id}
    assert touched <= nodes, f"run {run_id} of version {version} reached {touched - nodes}"
    assert {s.node_id for s in run.steps} <= nodes
    assert events[-1].type == "RUN_COMPLETED"


def assert_deprecated_version_refuses_new_runs(stub: Stub) -> None:
    runs_before = sorted((r.id, r.status) for r in list_runs(stub))

    deprecated = stub.DeprecateDefinition(
        ws.DeprecateDefinitionRequest(name=NAME, version="1", reason="superseded by 2"),
        timeout=CALL_TIMEOUT,
    )

    assert deprecated.changed and deprecated.info.deprecated
    assert deprecated.info.deprecated_by == "ops"  # the operator's token, not a request field
    error = refusal(lambda: start(stub, APPROVAL, version="1"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
    assert f"{NAME}@1 is deprecated" in (error.details() or "")
    assert sorted((r.id, r.status) for r in list_runs(stub)) == runs_before
    listed = stub.ListDefinitions(ws.ListDefinitionsRequest(name=NAME), timeout=CALL_TIMEOUT)
    assert {d.version: d.deprecated for d in listed.definitions} == {"1": True, "2": False}
