"""Talking to a control plane through the generated sync client, as any user's code would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from surefoot.v1 import common_pb2, definition_pb2, run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.eventually import assert_eventually

Stub = workflow_service_pb2_grpc.WorkflowServiceStub
CALL_TIMEOUT = 30.0


def json_payload(value: Any) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


def payload_value(payload: common_pb2.Payload) -> Any:
    return json.loads(payload.data) if payload.data else None


def register(
    stub: Stub, definition: definition_pb2.WorkflowDefinition
) -> ws.RegisterDefinitionResponse:
    request = ws.RegisterDefinitionRequest(definition=definition)
    return stub.RegisterDefinition(request, timeout=CALL_TIMEOUT)


def start_run(stub: Stub, workflow: str, value: Any, request_id: str = "") -> str:
    request = ws.StartRunRequest(
        workflow_name=workflow, input=json_payload(value), request_id=request_id
    )
    return stub.StartRun(request, timeout=CALL_TIMEOUT).run_id


def get_run(stub: Stub, run_id: str) -> run_pb2.Run:
    return stub.GetRun(ws.GetRunRequest(run_id=run_id), timeout=CALL_TIMEOUT).run


def status_name(status: run_pb2.RunStatus.ValueType) -> str:
    return run_pb2.RunStatus.Name(status).removeprefix("RUN_STATUS_")


def wait_for_status(stub: Stub, run_id: str, status: str, timeout: float = 60.0) -> run_pb2.Run:
    """The run once its status is `status` (e.g. "COMPLETED"); fails early on another end."""
    final = {"COMPLETED", "FAILED", "CANCELLED", "COMPENSATED", "NEEDS_ATTENTION"} - {status}

    def reached() -> run_pb2.Run | None:
        run = get_run(stub, run_id)
        current = status_name(run.status)
        assert current not in final, f"run {run_id} ended {current}, not {status}: {run}"
        return run if current == status else None

    return assert_eventually(reached, timeout, message=f"run {run_id} is {status}")


def list_runs(stub: Stub, **filters: Any) -> list[run_pb2.Run]:
    """Every run matching `filters` (ListRunsRequest fields), following the page tokens."""
    runs: list[run_pb2.Run] = []
    token = ""
    while True:
        request = ws.ListRunsRequest(page_token=token, page_size=100, **filters)
        response = stub.ListRuns(request, timeout=CALL_TIMEOUT)
        runs.extend(response.runs)
        token = response.next_page_token
        if not token:
            return runs


@dataclass(frozen=True)
class Event:
    """A history event with its type name and JSON data decoded, for readable assertions."""

    seq: int
    type: str
    node_id: str
    attempt: int
    time: float
    principal: str
    data: Any


def history(stub: Stub, run_id: str) -> list[Event]:
    request = ws.GetRunHistoryRequest(run_id=run_id)
    response = stub.GetRunHistory(request, timeout=CALL_TIMEOUT)
    return [
        Event(
            seq=e.seq,
            type=run_pb2.EventType.Name(e.type).removeprefix("EVENT_TYPE_"),
            node_id=e.node_id,
            attempt=e.attempt,
            time=e.time.seconds + e.time.nanos / 1e9,
            principal=e.principal,
            data=payload_value(e.data),
        )
        for e in response.events
    ]


def events_of(events: list[Event], kind: str, node_id: str | None = None) -> list[Event]:
    return [e for e in events if e.type == kind and (node_id is None or e.node_id == node_id)]


def assert_history_well_formed(events: list[Event]) -> None:
    """Sequence numbers 1..n without gaps or duplicates, and one RUN_STARTED first."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), [e.seq for e in events]
    assert events and events[0].type == "RUN_STARTED", events[:1]
    assert len(events_of(events, "RUN_STARTED")) == 1
