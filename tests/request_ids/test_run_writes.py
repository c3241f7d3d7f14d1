"""A write RPC repeated with its request id acts once and answers as the first time.

Each test sends a write twice with one request id: the second call gets the first answer
(equal message, trailing metadata `surefoot-repeated: true`) and writes nothing; the run's
history holds the action once. A different request under a used id is ALREADY_EXISTS and
writes nothing. The acceptance case: a call that timed out on the client (its transaction
held up behind a row lock) went through, and its repeat does not act again.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from surefoot.v1 import approval_pb2 as apb
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.store.database import open_engine
from tests.auth.auth_support import row_counts
from tests.request_ids.request_support import REPEATED, count, held, held_run, refusal, twice
from tests.support.approval_auth import ALICE, BOB, AuthControlPlane, bearer
from tests.support.eventually import assert_eventually
from tests.support.runs import get_run

pytestmark = pytest.mark.postgres


def test_pause_resume_and_cancel_repeated_with_their_ids_act_once(server: AuthControlPlane) -> None:
    run_id = held_run(server)
    stub = server.stub
    pause = ws.PauseRunRequest(run_id=run_id, reason="incident", request_id=uuid.uuid4().hex)
    before = row_counts(server.database_url)
    paused, _ = twice(stub.PauseRun, pause)
    assert paused.run.paused.reason == "incident"
    assert count(server, run_id, "RUN_PAUSED") == 1

    resume = ws.ResumeRunRequest(run_id=run_id, request_id=uuid.uuid4().hex)
    twice(stub.ResumeRun, resume)
    assert count(server, run_id, "RUN_RESUMED") == 1

    cancel = ws.CancelRunRequest(run_id=run_id, reason="duplicate", request_id=uuid.uuid4().hex)
    cancelled, _ = twice(stub.CancelRun, cancel)
    assert count(server, run_id, "RUN_CANCELLED") == 1
    # Without the id the same call is a second, refused, request: the run has ended.
    again = refusal(lambda: stub.CancelRun(ws.CancelRunRequest(run_id=run_id), timeout=30))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    after = row_counts(server.database_url)
    # Three answers kept, one per id; the repeats added nothing else.
    assert after["write_requests"] - before["write_requests"] == 3
    assert get_run(stub, run_id).status == cancelled.run.status


def test_a_different_request_under_a_used_id_is_refused_and_writes_nothing(
    server: AuthControlPlane,
) -> None:
    stub = server.stub
    first, second = held_run(server), held_run(server)
    request_id = uuid.uuid4().hex
    stub.PauseRun(ws.PauseRunRequest(run_id=first, request_id=request_id), timeout=30)
    before = row_counts(server.database_url)

    other_run = ws.PauseRunRequest(run_id=second, request_id=request_id)
    refused = refusal(lambda: stub.PauseRun(other_run, timeout=30))
    assert refused.code() == grpc.StatusCode.ALREADY_EXISTS
    assert request_id in (refused.details() or "") and "PauseRun" in (refused.details() or "")
    other_method = ws.CancelRunRequest(run_id=first, request_id=request_id)
    assert refusal(lambda: stub.CancelRun(other_method, timeout=30)).code() == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    # The same request from another caller is not theirs to repeat.
    same = ws.PauseRunRequest(run_id=first, request_id=request_id)
    by_bob = refusal(lambda: stub.PauseRun(same, timeout=30, metadata=bearer(BOB)))
    assert by_bob.code() == grpc.StatusCode.ALREADY_EXISTS

    assert row_counts(server.database_url) == before
    assert not get_run(stub, second).HasField("paused")
    assert count(server, first, "RUN_CANCELLED") == 0


def test_an_approval_decided_twice_with_one_id_is_decided_once(server: AuthControlPlane) -> None:
    run_id = held_run(server)
    stub = server.stub
    approval_id = assert_eventually(
        lambda: next(iter(get_run(stub, run_id).blocked_on), None), message="the run waits"
    ).approval.approval_id
    decide = apb.DecideApprovalRequest(
        approval_id=approval_id, approve=True, comment="ok", request_id=uuid.uuid4().hex
    )
    decided, _ = twice(stub.DecideApproval, decide, token=ALICE)
    assert decided.approval.status == apb.APPROVAL_STATUS_APPROVED
    assert count(server, run_id, "APPROVAL_DECIDED") == 1


def test_register_and_deprecate_repeated_answer_as_the_first_time(
    server: AuthControlPlane,
) -> None:
    stub = server.stub
    name = f"versions-{uuid.uuid4().hex[:8]}"
    register_request = ws.RegisterDefinitionRequest(
        definition=held(name), request_id=uuid.uuid4().hex
    )
    registered, _ = twice(stub.RegisterDefinition, register_request)
    # The first call created the version: so says its repeat (a plain second call says not).
    assert registered.created
    assert not stub.RegisterDefinition(
        ws.RegisterDefinitionRequest(definition=held(name)), timeout=30
    ).created

    deprecate = ws.DeprecateDefinitionRequest(
        name=name, version="1", reason="superseded", request_id=uuid.uuid4().hex
    )
    deprecated, _ = twice(stub.DeprecateDefinition, deprecate)
    assert deprecated.changed and deprecated.info.deprecated


def test_an_event_resent_with_its_id_is_answered_the_same_and_another_under_it_refused(
    server: AuthControlPlane,
) -> None:
    stub = server.stub
    event_id = uuid.uuid4().hex
    send = apb.SendEventRequest(
        event_name="parcel.delivered", correlation_key="p-1", event_id=event_id
    )
    first = stub.SendEvent(send, timeout=30)
    assert stub.SendEvent(send, timeout=30) == first
    before = row_counts(server.database_url)
    other = apb.SendEventRequest(event_name="parcel.lost", correlation_key="p-1", event_id=event_id)
    refused = refusal(lambda: stub.SendEvent(other, timeout=30))
    assert refused.code() == grpc.StatusCode.ALREADY_EXISTS
    assert row_counts(server.database_url) == before


def test_a_pause_that_timed_out_on_the_client_went_through_and_its_repeat_acts_once(
    server: AuthControlPlane,
) -> None:
    """The acceptance case: the server is slow (its transaction waits on a row lock), the
    client gives up; the write commits later; the operator repeats with the same id."""
    stub = server.stub
    run_id = held_run(server)
    pause = ws.PauseRunRequest(run_id=run_id, reason="slow server", request_id=uuid.uuid4().hex)
    cancel = ws.CancelRunRequest(run_id=run_id, reason="then stop", request_id=uuid.uuid4().hex)
    calls: list[tuple[Any, Any]] = [(pause, stub.PauseRun), (cancel, stub.CancelRun)]
    engine = open_engine(server.database_url, pool_size=1)
    try:
        with engine.connect() as blocker:
            blocker.execute(text("select id from runs where id = :id for update"), {"id": run_id})
            for request, method in calls:
                timed_out = refusal(functools.partial(method, request, timeout=0.5))
                assert timed_out.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            blocker.rollback()
    finally:
        engine.dispose()
    # The calls the client gave up on commit once the lock is gone.
    assert_eventually(
        lambda: count(server, run_id, "RUN_CANCELLED") == 1, message="the cancel went through"
    )
    for request, method in calls:
        _, call = method.with_call(request, timeout=30)
        assert REPEATED in tuple(call.trailing_metadata())
    assert count(server, run_id, "RUN_PAUSED") == 1
    assert count(server, run_id, "RUN_CANCELLED") == 1
