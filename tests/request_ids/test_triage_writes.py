"""Dead-letter writes and operation cancels, repeated with their request ids, act once.

RetryStep, SkipStep, RedriveDeadLetters (all of its retries in one transaction) and
CancelOperation each answer a repeat with the first answer, marked as a repeat, and the
runs' histories hold each action once.
"""

from __future__ import annotations

import uuid

import pytest
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1.operation_service_pb2_grpc import OperationServiceStub

from tests.e2e_triage.triage_support import DECLINED, one_attempt_b
from tests.request_ids.request_support import count, twice
from tests.support.approval_auth import OPERATOR, AuthControlPlane, bearer
from tests.support.processes import WorkerProcess
from tests.support.runs import json_payload, register, start_run, wait_for_status

pytestmark = pytest.mark.postgres


def dead_lettered(server: AuthControlPlane, name: str, runs: int) -> list[str]:
    register(server.stub, one_attempt_b(name))
    run_ids = [start_run(server.stub, name, DECLINED) for _ in range(runs)]
    for run_id in run_ids:
        wait_for_status(server.stub, run_id, "NEEDS_ATTENTION")
    return run_ids


def test_retry_skip_and_redrive_repeated_with_their_ids_act_once(
    server: AuthControlPlane, steps_worker: WorkerProcess
) -> None:
    name = f"triage-{uuid.uuid4().hex[:8]}"
    retried, skipped, *redriven = dead_lettered(server, name, 4)
    stub = server.stub

    retry = ws.RetryStepRequest(run_id=retried, node_id="b", request_id=uuid.uuid4().hex)
    twice(stub.RetryStep, retry)
    # The retry fails again (the card is still declined): dead-lettered once more, once.
    wait_for_status(stub, retried, "NEEDS_ATTENTION")
    assert count(server, retried, "STEP_RETRIED") == 1

    skip = ws.SkipStepRequest(
        run_id=skipped, node_id="b", output=json_payload({"trail": ["b"]}), request_id="s-1"
    )
    twice(stub.SkipStep, skip)
    assert count(server, skipped, "STEP_SKIPPED") == 1
    wait_for_status(stub, skipped, "COMPLETED")

    redrive = ws.RedriveDeadLettersRequest(
        filter=ws.DeadLetterFilter(workflow_name=name), request_id=uuid.uuid4().hex
    )
    first, _ = twice(stub.RedriveDeadLetters, redrive)
    assert isinstance(first, ws.RedriveDeadLettersResponse)
    # The two never touched and the one retried (dead again by then): three, all at once.
    assert first.retried == 3 and first.remaining == 0
    for run_id in redriven:
        assert count(server, run_id, "STEP_RETRIED") == 1
    assert count(server, retried, "STEP_RETRIED") == 2


def test_an_operation_cancelled_twice_with_one_id_answers_the_first_cancel(
    server: AuthControlPlane, steps_worker: WorkerProcess
) -> None:
    name = f"slow-redrive-{uuid.uuid4().hex[:8]}"
    dead_lettered(server, name, 3)
    operations = OperationServiceStub(server.channel)
    started = operations.StartRedrive(
        opb.StartRedriveRequest(
            selection=opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name=name)),
            rate_per_second=0.01,
        ),
        timeout=30,
        metadata=bearer(OPERATOR),
    )
    cancel = opb.CancelOperationRequest(
        operation_id=started.operation.id, reason="wrong group", request_id=uuid.uuid4().hex
    )
    cancelled, _ = twice(operations.CancelOperation, cancel)
    assert isinstance(cancelled, opb.CancelOperationResponse)
    assert cancelled.operation.cancel_reason == "wrong group"
    assert cancelled.operation.state == opb.OPERATION_STATE_CANCELLED
