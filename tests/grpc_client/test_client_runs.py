"""The generated sync client against a real control plane: starting, reading, listing runs."""

from __future__ import annotations

import grpc
import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.runs import Stub, json_payload, payload_value
from tests.support.workflows import three_steps

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def five_runs(grpc_stub: Stub) -> list[str]:
    """Five runs of `paged`, which no worker serves: they wait in their first step."""
    grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=three_steps("paged")))
    return [
        grpc_stub.StartRun(
            ws.StartRunRequest(
                workflow_name="paged",
                input=json_payload({"trail": [n]}),
                request_id=f"paged-{n}",
            )
        ).run_id
        for n in range(5)
    ]


def test_get_run_shows_its_first_step_waiting(grpc_stub: Stub, five_runs: list[str]) -> None:
    run = grpc_stub.GetRun(ws.GetRunRequest(run_id=five_runs[3])).run

    assert (run.id, run.namespace) == (five_runs[3], "default")
    assert (run.workflow_name, run.workflow_version) == ("paged", "1")
    assert run.status == run_pb2.RUN_STATUS_RUNNING
    assert run.request_id == "paged-3"
    assert payload_value(run.input) == {"trail": [3]}
    assert run.current_node == "a"
    assert run.trace_id
    (step,) = run.steps
    assert (step.node_id, step.step_type, step.attempt) == ("a", "e2e-work", 1)
    assert step.status == run_pb2.STEP_STATUS_SCHEDULED
    assert payload_value(step.input) == {"trail": [3]}
    assert step.idempotency_key


def test_list_runs_pages_through_every_run_once(grpc_stub: Stub, five_runs: list[str]) -> None:
    pages: list[list[str]] = []
    tokens: list[str] = []
    token = ""
    while True:
        request = ws.ListRunsRequest(workflow_name="paged", page_size=2, page_token=token)
        response = grpc_stub.ListRuns(request)
        pages.append([r.id for r in response.runs])
        token = response.next_page_token
        if not token:
            break
        tokens.append(token)
        assert len(pages) < 10, "the pages never end"

    assert [len(page) for page in pages] == [2, 2, 1]
    assert len(set(tokens)) == 2
    listed = [run_id for page in pages for run_id in page]
    assert len(set(listed)) == len(listed) == 5
    assert set(listed) == set(five_runs)


def test_list_runs_filters_by_status(grpc_stub: Stub, five_runs: list[str]) -> None:
    def listed(*statuses: run_pb2.RunStatus.ValueType) -> set[str]:
        request = ws.ListRunsRequest(workflow_name="paged", statuses=statuses)
        return {r.id for r in grpc_stub.ListRuns(request).runs}

    assert listed(run_pb2.RUN_STATUS_RUNNING) == set(five_runs)
    assert listed(run_pb2.RUN_STATUS_COMPLETED, run_pb2.RUN_STATUS_FAILED) == set()


def test_list_runs_refuses_a_bad_page_token(grpc_stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        grpc_stub.ListRuns(ws.ListRunsRequest(page_token="not-a-token"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_history_of_a_new_run(grpc_stub: Stub, five_runs: list[str]) -> None:
    run_id = five_runs[0]

    events = grpc_stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id)).events

    assert [(e.seq, e.type, e.node_id) for e in events] == [
        (1, run_pb2.EVENT_TYPE_RUN_STARTED, ""),
        (2, run_pb2.EVENT_TYPE_STEP_SCHEDULED, "a"),
    ]
    assert all(e.run_id == run_id and e.time.seconds > 0 for e in events)
    assert payload_value(events[1].data)["input"] == {"trail": [0]}
    after_first = grpc_stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id, after_seq=1))
    assert [e.seq for e in after_first.events] == [2]
    first_only = grpc_stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id, limit=1))
    assert [e.seq for e in first_only.events] == [1]


def test_cancel_run(grpc_stub: Stub) -> None:
    grpc_stub.RegisterDefinition(ws.RegisterDefinitionRequest(definition=three_steps("dropped")))
    run_id = grpc_stub.StartRun(
        ws.StartRunRequest(workflow_name="dropped", input=json_payload({"trail": []}))
    ).run_id

    run = grpc_stub.CancelRun(ws.CancelRunRequest(run_id=run_id, reason="not needed")).run

    assert run.status == run_pb2.RUN_STATUS_CANCELLED
    assert run.HasField("closed_at")
    events = grpc_stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id)).events
    assert events[-1].type == run_pb2.EVENT_TYPE_RUN_CANCELLED
    assert payload_value(events[-1].data)["reason"] == "not needed"
