"""Acceptance: the attacks of issue 11 on worker streams, replayed against a real server
started with an auth file; each is refused with the right status and writes nothing.

Raw streams (tests/support/raw_worker.py) play attacker and legitimate worker alike, so
that each message is exactly what the case needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from surefoot.v1 import common_pb2
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ProcessRegistry
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import (
    events_of,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.worker_trust.trust_plane import (
    CHARGER,
    OTHER_WORKER,
    PAYMENTS,
    VIEWER,
    WORKER,
    TrustPlane,
    stored,
    write_auth_file,
)

STEP_TYPE = "pay-salary"


@pytest.fixture
def server(database_url: str, processes: ProcessRegistry, tmp_path: Path) -> Iterator[TrustPlane]:
    plane = TrustPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    plane.start()
    yield plane
    plane.stop()


def register_salary(server: TrustPlane) -> None:
    task = {"step_type": STEP_TYPE, "input": "input", "idempotency": "key"}
    register(
        server.stub,
        definition_from_dict(
            {"name": "salary", "version": "1", "nodes": [{"id": "pay", "task": task}]}
        ),
    )


def refused_hello(server: TrustPlane, token: str, **hello: object) -> grpc.RpcError:
    """Opens a stream that the server must end before its Welcome; the error it ends with."""
    steps = hello.pop("step_types", [declaration(STEP_TYPE)])
    stream = RawWorkerStream(server.channel, "attacker", steps, 1, token=token, **hello)  # type: ignore[arg-type]
    error = stream.wait_ended()
    assert error is not None, "the stream was accepted"
    assert not [m for m in stream.received if m.WhichOneof("message") == "welcome"]
    return error


def test_a_stream_without_a_valid_credential_is_unauthenticated_and_writes_nothing(
    server: TrustPlane, database_url: str
) -> None:
    before = stored(database_url)
    for token in ("", "not-a-token", VIEWER + "x"):
        error = refused_hello(server, token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (token, error)
    assert stored(database_url) == before


def test_a_worker_credential_acts_only_in_its_namespace_and_role(
    server: TrustPlane, database_url: str
) -> None:
    before = stored(database_url)
    # Another namespace than its own: nothing there is its business, not even existence.
    error = refused_hello(server, PAYMENTS, namespace="default")
    assert error.code() == grpc.StatusCode.NOT_FOUND, error
    # Its namespace, without the worker role.
    error = refused_hello(server, VIEWER, namespace="default")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error
    assert "worker" in (error.details() or "")
    assert stored(database_url) == before

    # A Hello that names no namespace works in the credential's only one.
    stream = RawWorkerStream(server.channel, "payments-1", [declaration("payout")], token=PAYMENTS)
    assert stream.next_of("welcome").welcome.session_id
    assert stored(database_url)["counts"]["step_types"] == before["counts"]["step_types"] + 1
    stream.close()


def test_a_credential_limited_to_step_types_may_declare_only_those(
    server: TrustPlane, database_url: str
) -> None:
    before = stored(database_url)
    steps = [declaration("charge-card"), declaration("refund")]
    error = refused_hello(server, CHARGER, step_types=steps)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error
    assert "'refund'" in (error.details() or "")
    assert stored(database_url) == before

    stream = RawWorkerStream(server.channel, "charger", [declaration("charge-card")], token=CHARGER)
    assert stream.next_of("welcome").welcome.session_id
    stream.close()


def test_a_hello_with_ten_thousand_step_types_is_refused_and_writes_nothing(
    server: TrustPlane, database_url: str
) -> None:
    before = stored(database_url)
    steps = [declaration(f"flood-{index}") for index in range(10_000)]
    error = refused_hello(server, WORKER, step_types=steps)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert "--worker-max-step-types" in (error.details() or "")
    assert stored(database_url) == before


def test_results_from_a_stream_that_does_not_hold_the_lease_are_refused(
    server: TrustPlane, database_url: str
) -> None:
    register_salary(server)
    legitimate = RawWorkerStream(
        server.channel, "payroll-worker", [declaration(STEP_TYPE)], 1, token=WORKER
    )
    legitimate.next_of("welcome")
    run_id = start_run(server.stub, "salary", {"iban": "DE89 3704 0044 0532 0130 00"})
    task = legitimate.next_task()
    # Task ids are public knowledge: run id, node, attempt.
    assert task.task_id == f"{run_id}:pay:1"

    # A stream with a valid worker credential of the same namespace, and one of another.
    intruders = [
        RawWorkerStream(server.channel, "intruder", [declaration(STEP_TYPE)], token=WORKER),
        RawWorkerStream(server.channel, "elsewhere", [declaration(STEP_TYPE)], token=PAYMENTS),
    ]
    for intruder in intruders:
        intruder.next_of("welcome")
    before = stored(database_url)
    guessed = [task.task_id, f"{run_id}:pay:2", f"{run_id}:nowhere:1"]
    for intruder in intruders:
        for task_id in guessed:
            intruder.complete(task_id, 1, {"paid_to": "the attacker"})
        fail = wpb.Fail(task_id=task.task_id, attempt=1, error_type="X", retryable=False)
        intruder.send(wpb.WorkerMessage(fail=fail))
        intruder.send(wpb.WorkerMessage(hand_back=wpb.HandBack(task_id=task.task_id, attempt=1)))
        intruder.heartbeat(task.task_id)
        refused = [intruder.next_of("refused").refused for _ in range(len(guessed) + 3)]
        assert {r.task_id for r in refused} == set(guessed)
        assert all("does not hold" in r.reason for r in refused)
    assert stored(database_url) == before

    # The legitimate worker's result is the one recorded, and credited to it.
    legitimate.complete(task.task_id, task.attempt, {"paid_to": "the employee"})
    assert legitimate.next_of("ack").ack.task_ids == [task.task_id]
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"paid_to": "the employee"}
    events = history(server.stub, run_id)
    assert [e.principal for e in events_of(events, "ATTEMPT_COMPLETED")] == ["payroll-worker"]
    assert not events_of(events, "RESULT_IGNORED")
    for stream in (legitimate, *intruders):
        stream.close()


def test_a_reconnecting_worker_resumes_its_leases_after_a_graceful_restart(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> None:
    # Leases long enough to outlive the restart.
    server = TrustPlane(
        processes, database_url, write_auth_file(tmp_path / "auth.yaml"), lease_seconds=30
    )
    server.start()
    register_salary(server)
    # Its own channel: the worker's stream must end because the server stops, not because
    # the test's channel to the server is closed first.
    own_channel = grpc.insecure_channel(server.address)
    first = RawWorkerStream(
        own_channel, "payroll-worker", [declaration(STEP_TYPE)], 1, token=WORKER
    )
    session_id = first.next_of("welcome").welcome.session_id
    run_id = start_run(server.stub, "salary", {"iban": "DE89"})
    task = first.next_task()

    assert server.stop() == 0  # SIGTERM: the stream is drained, the lease is kept
    assert first.next_of("drain").drain.reason
    first.wait_ended()
    own_channel.close()
    server.start(server.port)

    # A stream that names no earlier session holds nothing; nor does one naming a guessed
    # session id, nor one of another credential that learned the real one (in the same
    # namespace or another).
    others = [
        RawWorkerStream(server.channel, "other", [declaration(STEP_TYPE)], token=WORKER),
        RawWorkerStream(
            server.channel, "guess", [declaration(STEP_TYPE)], token=WORKER, resume=["0" * 32]
        ),
        RawWorkerStream(
            server.channel, "far", [declaration(STEP_TYPE)], token=PAYMENTS, resume=[session_id]
        ),
        RawWorkerStream(
            server.channel,
            "payroll-worker",
            [declaration(STEP_TYPE)],
            token=OTHER_WORKER,
            resume=[session_id],
        ),
    ]
    for other in others:
        other.next_of("welcome")
    before = stored(database_url)
    for other in others:
        other.complete(task.task_id, task.attempt, {"paid_to": "the attacker"})
        assert other.next_of("refused").refused.task_id == task.task_id
    assert stored(database_url) == before

    # The worker names the session it was welcomed on: the lease follows it.
    resumed = RawWorkerStream(
        server.channel,
        "payroll-worker",
        [declaration(STEP_TYPE)],
        token=WORKER,
        resume=[session_id],
    )
    resumed.next_of("welcome")
    resumed.complete(task.task_id, task.attempt, {"paid_to": "the employee"})
    assert resumed.next_of("ack").ack.task_ids == [task.task_id]
    run = wait_for_status(server.stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"paid_to": "the employee"}
    events = history(server.stub, run_id)
    assert [e.principal for e in events_of(events, "ATTEMPT_COMPLETED")] == ["payroll-worker"]
    assert len(events_of(events, "STEP_SCHEDULED")) == 1  # never retried: one attempt
    for stream in (*others, resumed):
        stream.close()
    server.stop()


def test_a_stream_past_the_message_rate_or_size_limit_ends_resource_exhausted(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> None:
    limits = [
        "--worker-messages-per-second", "20",
        "--worker-message-burst", "40",
        "--max-message-bytes", "65536",
    ]  # fmt: skip
    server = TrustPlane(processes, database_url, write_auth_file(tmp_path / "a.yaml"), limits)
    server.start()
    before = stored(database_url)

    flood = RawWorkerStream(server.channel, "flood", [declaration(STEP_TYPE)], token=WORKER)
    flood.next_of("welcome")
    for _ in range(200):
        flood.send(wpb.WorkerMessage(credit=wpb.Credit(n=0)))
    error = flood.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert "messages per second" in (error.details() or "")

    large = RawWorkerStream(server.channel, "large", [declaration(STEP_TYPE)], token=WORKER)
    large.next_of("welcome")
    payload = common_pb2.Payload(encoding="json/plain", data=b'"' + b"x" * 100_000 + b'"')
    large.send(wpb.WorkerMessage(complete=wpb.Complete(task_id="a:b:1", attempt=1, output=payload)))
    error = large.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert "65536" in (error.details() or "")
    assert stored(database_url)["counts"] == {
        **before["counts"],
        "step_types": before["counts"]["step_types"] + 1,  # the one Hello accepted
    }
    server.stop()
