"""ConnectorOutcomeService: who may keep outcome records, for which runs, with what input.

A record belongs to a step of a run, so only a caller of the run's namespace reaches it; on
a server with an auth file, only a caller with a token. Every refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from sqlalchemy import func, select
from surefoot.v1 import common_pb2, worker_service_pb2_grpc
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_connectors import OutcomeRecords
from surefoot_connectors.call import ConnectorFailure

from controlplane.store import connector_outcomes as records
from controlplane.store.schema import connector_outcomes
from tests.connectors.outcome_plane import (
    InProcessControlPlane,
    control_plane_on,
    start_holding_run,
)
from tests.support.approval_auth import OPERATOR, bearer, write_auth_file
from tests.support.databases import fresh_database


@pytest.fixture(scope="module")
def auth_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessControlPlane]:
    """A control plane started with an auth file, on SQLite."""
    directory = tmp_path_factory.mktemp("outcome-service")
    auth_file = write_auth_file(directory / "auth.yaml")
    with (
        fresh_database("sqlite", directory) as url,
        control_plane_on(url, auth_file=str(auth_file)) as plane,
    ):
        yield plane


@pytest.fixture
def stub(auth_plane: InProcessControlPlane) -> Iterator[Any]:
    with grpc.insecure_channel(auth_plane.address) as channel:
        yield worker_service_pb2_grpc.ConnectorOutcomeServiceStub(channel)


def _count(plane: InProcessControlPlane) -> int:
    with plane.engine.connect() as connection:
        counted = select(func.count()).select_from(connector_outcomes)
        return int(connection.execute(counted).scalar_one())


def _record(plane: InProcessControlPlane, key: str) -> records.Recorded | None:
    with plane.engine.connect() as connection:
        return records.read(connection, key)


def _refused(call: Any, request: Any, metadata: Any = ()) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10, metadata=metadata)
    return raised.value


def _outcome(value: bytes) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=value)


def test_without_a_token_every_outcome_rpc_is_refused_and_writes_nothing(
    auth_plane: InProcessControlPlane, stub: Any
) -> None:
    key = f"{start_holding_run(auth_plane.stub, metadata=bearer(OPERATOR))}:call"
    begin = wpb.BeginCallRequest(idempotency_key=key, connector="surefoot.smtp", attempt=1)
    complete = wpb.CompleteCallRequest(idempotency_key=key, attempt=1, outcome=_outcome(b"{}"))
    clear = wpb.ClearCallRequest(idempotency_key=key, attempt=1)
    before = _count(auth_plane)
    for metadata in ((), bearer("not-a-token")):
        for call, request in (
            (stub.BeginCall, begin),
            (stub.CompleteCall, complete),
            (stub.ClearCall, clear),
        ):
            error = _refused(call, request, metadata)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    assert _count(auth_plane) == before and _record(auth_plane, key) is None

    # The connector worker's client says so and does not call the service.
    calls: list[int] = []
    client = OutcomeRecords(auth_plane.address)
    try:
        with pytest.raises(ConnectorFailure) as raised:
            client.run_once(
                idempotency_key=key,
                connector="surefoot.smtp",
                attempt=1,
                send=lambda: calls.append(1),
            )
    finally:
        client.close()
    assert raised.value.type == "OutcomeStoreRefused" and not raised.value.retryable
    assert "UNAUTHENTICATED" in raised.value.message
    assert calls == [] and _record(auth_plane, key) is None

    # With a token the same request is served: the refusal was about the caller.
    answer = stub.BeginCall(begin, timeout=10, metadata=bearer(OPERATOR))
    assert answer.state == wpb.CALL_RECORD_STATE_CLAIMED
    recorded = _record(auth_plane, key)
    assert recorded is not None and recorded.state == records.STARTED


def test_another_namespace_finds_no_run_and_changes_nothing(
    auth_plane: InProcessControlPlane, stub: Any
) -> None:
    token = bearer(OPERATOR)
    run_id = start_holding_run(auth_plane.stub, namespace="team-a", metadata=token)
    key = f"{run_id}:notify"

    def begin(namespace: str) -> wpb.BeginCallRequest:
        return wpb.BeginCallRequest(
            namespace=namespace, idempotency_key=key, connector="surefoot.webhook", attempt=1
        )

    # No record yet: team-b cannot claim team-a's step.
    error = _refused(stub.BeginCall, begin("team-b"), token)
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    assert run_id in (error.details() or "")
    assert _record(auth_plane, key) is None

    assert stub.BeginCall(begin("team-a"), timeout=10, metadata=token).state == (
        wpb.CALL_RECORD_STATE_CLAIMED
    )
    # A record exists now: team-b neither sees it, nor completes, nor clears it.
    for call, request in (
        (stub.BeginCall, begin("team-b")),
        (
            stub.CompleteCall,
            wpb.CompleteCallRequest(
                namespace="team-b", idempotency_key=key, attempt=1, outcome=_outcome(b"1")
            ),
        ),
        (
            stub.ClearCall,
            wpb.ClearCallRequest(namespace="team-b", idempotency_key=key, attempt=1),
        ),
    ):
        error = _refused(call, request, token)
        assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()
    recorded = _record(auth_plane, key)
    assert recorded is not None and recorded.state == records.STARTED
    assert recorded.outcome is None

    # The default namespace is another one too.
    error = _refused(stub.BeginCall, begin(""), token)
    assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"idempotency_key": "no-node"}, "idempotency_key"),
        ({"idempotency_key": "RUN:" + "n" * 300}, "idempotency_key"),
        ({"idempotency_key": "RUN:call\x07"}, "idempotency_key"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": -3}, "attempt"),
        ({"connector": ""}, "connector"),
        ({"connector": "surefoot smtp"}, "connector"),
        ({"namespace": "Team A"}, "namespace"),
    ],
)
def test_bad_input_to_begin_is_invalid_argument_and_writes_nothing(
    auth_plane: InProcessControlPlane, stub: Any, change: dict[str, Any], field: str
) -> None:
    run_id = start_holding_run(auth_plane.stub, metadata=bearer(OPERATOR))
    fields: dict[str, Any] = {
        "idempotency_key": f"{run_id}:call",
        "connector": "surefoot.smtp",
        "attempt": 1,
        **change,
    }
    if isinstance(fields["idempotency_key"], str):
        fields["idempotency_key"] = fields["idempotency_key"].replace("RUN", run_id)
    before = _count(auth_plane)
    error = _refused(stub.BeginCall, wpb.BeginCallRequest(**fields), bearer(OPERATOR))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith(field), error.details()
    assert _count(auth_plane) == before


@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        (common_pb2.Payload(encoding="json/plain", data=b"{not json"), "outcome.data"),
        (common_pb2.Payload(encoding="xml", data=b"<a/>"), "outcome.encoding"),
        (common_pb2.Payload(encoding="json/plain", data=b"1" * 5000), "outcome.data"),
    ],
)
def test_an_outcome_that_is_not_json_is_invalid_argument_and_keeps_the_claim(
    auth_plane: InProcessControlPlane, stub: Any, outcome: common_pb2.Payload, field: str
) -> None:
    token = bearer(OPERATOR)
    key = f"{start_holding_run(auth_plane.stub, metadata=token)}:call"
    claim = wpb.BeginCallRequest(idempotency_key=key, connector="surefoot.smtp", attempt=1)
    stub.BeginCall(claim, timeout=10, metadata=token)
    request = wpb.CompleteCallRequest(idempotency_key=key, attempt=1, outcome=outcome)
    error = _refused(stub.CompleteCall, request, token)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith(field), error.details()
    recorded = _record(auth_plane, key)
    assert recorded is not None and recorded.state == records.STARTED
