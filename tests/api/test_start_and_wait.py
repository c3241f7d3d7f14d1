"""StartRun with wait_seconds: the run's end in the answer to the call that started it.

The control plane runs in the test process so that a test can lengthen the call's re-read
interval: an answer that still comes at once came from the committer's news of the run.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator

import grpc
import pytest
from surefoot.v1 import common_pb2, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.api import run_wait
from tests.api.watch_support import GATES, GatedRun, Stub, two_gates
from tests.connectors.outcome_plane import InProcessControlPlane, control_plane_on
from tests.support.eventually import assert_eventually
from tests.support.runs import get_run, list_runs, wait_for_status
from tests.support.waits import field_violations

CALL_TIMEOUT = 60.0


@pytest.fixture
def plane(database_url: str) -> Iterator[InProcessControlPlane]:
    with control_plane_on(database_url) as started:
        started.stub.RegisterDefinition(
            ws.RegisterDefinitionRequest(definition=two_gates()), timeout=CALL_TIMEOUT
        )
        yield started


def start_request(key: str, wait: float, request_id: str = "") -> ws.StartRunRequest:
    data = json.dumps({"key": key}).encode()
    return ws.StartRunRequest(
        workflow_name=GATES,
        input=common_pb2.Payload(encoding="json/plain", data=data),
        request_id=request_id,
        wait_seconds=wait,
    )


def followed(plane: InProcessControlPlane) -> set[str]:
    return plane._plane._committer.watches.followed()  # type: ignore[union-attr,no-any-return]


def run_id_of(stub: Stub) -> str:
    """The id of the test's run (each test starts one, on a database of its own)."""

    def started() -> str | None:
        runs = list_runs(stub, workflow_name=GATES)
        return runs[0].id if len(runs) == 1 else None

    return assert_eventually(started, message="the run started")


def test_the_answer_comes_when_the_run_ends_from_the_committer_s_news(
    plane: InProcessControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No re-read for an hour: only the news of this process's commits can end the wait.
    monkeypatch.setattr(run_wait, "REREAD_SECONDS", 3600.0)
    stub = plane.stub
    key = uuid.uuid4().hex
    call = stub.StartRun.future(start_request(key, 600), timeout=CALL_TIMEOUT)
    run = GatedRun(run_id_of(stub), key)
    assert_eventually(lambda: run.run_id in followed(plane), message="the call follows it")
    run.release(stub, "first")
    run.release(stub, "second")
    answer = call.result()
    assert (answer.run_id, answer.created) == (run.run_id, True)
    assert answer.status == run_pb2.RUN_STATUS_COMPLETED
    final = get_run(stub, run.run_id)
    assert answer.output == final.output
    assert_eventually(lambda: run.run_id not in followed(plane), message="unsubscribed")


def test_a_wait_that_runs_out_answers_with_the_status_and_the_run_goes_on(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    key = uuid.uuid4().hex
    answer = stub.StartRun(start_request(key, 0.3), timeout=CALL_TIMEOUT)
    assert answer.created and answer.status == run_pb2.RUN_STATUS_WAITING
    assert not answer.HasField("output")
    assert answer.run_id not in followed(plane)
    run = GatedRun(answer.run_id, key)
    run.release(stub, "first")
    run.release(stub, "second")
    wait_for_status(stub, run.run_id, "COMPLETED")


def test_a_retried_start_waits_for_the_run_its_request_id_started(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    key, request_id = uuid.uuid4().hex, uuid.uuid4().hex
    first = stub.StartRun(start_request(key, 0, request_id), timeout=CALL_TIMEOUT)
    assert first.status == run_pb2.RUN_STATUS_WAITING
    retried = stub.StartRun.future(start_request(key, 600, request_id), timeout=CALL_TIMEOUT)
    assert_eventually(lambda: first.run_id in followed(plane), message="the retry follows it")
    run = GatedRun(first.run_id, key)
    run.release(stub, "first")
    run.release(stub, "second")
    answer = retried.result()
    assert (answer.run_id, answer.created) == (first.run_id, False)
    assert answer.status == run_pb2.RUN_STATUS_COMPLETED
    # Ended already: a third call answers at once.
    third = stub.StartRun(start_request(key, 600, request_id), timeout=CALL_TIMEOUT)
    assert third.status == run_pb2.RUN_STATUS_COMPLETED and third.output == answer.output


def test_a_caller_that_hangs_up_leaves_no_subscription(plane: InProcessControlPlane) -> None:
    stub = plane.stub
    key = uuid.uuid4().hex
    call = stub.StartRun.future(start_request(key, 600), timeout=60)
    run_id = run_id_of(stub)  # started
    assert_eventually(lambda: run_id in followed(plane), message="the call follows it")
    call.cancel()
    assert_eventually(lambda: run_id not in followed(plane), message="unsubscribed")


@pytest.mark.parametrize("wait", [-1.0, math.nan, math.inf, 3601.0])
def test_a_bad_wait_is_refused_and_starts_nothing(
    plane: InProcessControlPlane, wait: float
) -> None:
    stub = plane.stub
    with pytest.raises(grpc.RpcError) as raised:
        stub.StartRun(start_request(uuid.uuid4().hex, wait), timeout=CALL_TIMEOUT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in field_violations(raised.value)] == ["wait_seconds"]
    assert list_runs(stub, workflow_name=GATES) == []


def test_a_deadline_shorter_than_the_wait_gets_the_status_not_an_error(
    plane: InProcessControlPlane,
) -> None:
    answer = plane.stub.StartRun(start_request(uuid.uuid4().hex, 600), timeout=2.0)
    assert answer.created and answer.status == run_pb2.RUN_STATUS_WAITING
