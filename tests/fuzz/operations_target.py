"""The server the OperationService and WorkerAdminService fuzz runs against, and its calls.

A mutated StartRedrive may start a real redrive, a mutated CancelOperation cancel a real
one: so this fuzz has a server and a database of its own, which no other check reads. It is
seeded like the other fuzz servers (seed.py), plus what these services show: more dead
letters, a redrive still following its retried item, a cancelled one, and worker streams as
another control plane of the database would have recorded them (live and stale rows written
straight into `worker_sessions`: a real stream would be confirmed on a timer, and the
fingerprint of a refused request must only change if that request wrote).

The methods are read from the services' descriptors: an RPC added to either service is
fuzzed as it comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message
from sqlalchemy import create_engine, insert
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import worker_admin_service_pb2 as wapb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1 import workflow_service_pb2_grpc

from controlplane.store.schema import worker_sessions
from tests.fuzz.seed import ERROR_TYPE, STEP_TYPE, Metadata, dead_letter_tasks
from tests.fuzz.target import CALL_TIMEOUT, OK, Target
from tests.support.runs import json_payload

SERVICE_MODULES = (opb, wapb)
# Dead letters seeded beside seed.py's three, for real redrives to find.
EXTRA_DEAD_LETTERS = 6
FOLLOWED_REQUEST = "fuzz-op-followed"
CANCELLED_REQUEST = "fuzz-op-cancelled"
ELSEWHERE = "fuzz-elsewhere:1"
# Twice the operation runner's settle interval (dispatch/redrives.py, SETTLE_SECONDS).
QUIET_SECONDS = 1.0


def _methods() -> dict[str, Any]:
    """Every method of the two services by "Service.Method"."""
    found: dict[str, Any] = {}
    for module in SERVICE_MODULES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found[f"{service.name}.{method.name}"] = method
    return found


METHODS = _methods()
# Server streams (WatchOperation): their first answer is awaited, then the call cancelled.
STREAMS = sorted(name for name, m in METHODS.items() if m.server_streaming)
UNARY = sorted(
    name for name, m in METHODS.items() if not (m.client_streaming or m.server_streaming)
)
READ_PREFIXES = ("Get", "List", "Watch")
READS = sorted(name for name in METHODS if name.partition(".")[2].startswith(READ_PREFIXES))
WRITES = sorted(name for name in UNARY if name not in READS)


def request_class(method: str) -> type[Message]:
    return message_factory.GetMessageClass(METHODS[method].input_type)


def response_class(method: str) -> type[Message]:
    return message_factory.GetMessageClass(METHODS[method].output_type)


def _path(method: str) -> str:
    descriptor = METHODS[method]
    return f"/{descriptor.containing_service.full_name}/{descriptor.name}"


def _body(request: Message | bytes) -> bytes:
    return request if isinstance(request, bytes) else request.SerializeToString()


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    # The status message of a refusal.
    details: str = ""
    # The serialized answer when OK (a stream's first message; empty if it ended at once).
    body: bytes = b""


def _outcome(run: Callable[[], bytes]) -> Outcome:
    """How a call ended. An answer whose status message is too big for the client's
    metadata limit arrives as RESOURCE_EXHAUSTED from the client's transport, not as what
    the server answered: a failure of the server, not a refusal."""
    try:
        body = run()
    except grpc.RpcError as exc:
        code = exc.code()
        assert isinstance(code, grpc.StatusCode)
        details = str(exc.details() or "")
        assert "metadata size exceeds" not in details, f"the answer was undeliverable: {details}"
        return Outcome(code, details)
    return Outcome(OK, body=body)


def answer(
    target: Target, method: str, request: Message | bytes, metadata: Metadata | None = None
) -> Outcome:
    """One request (a message or raw bytes) and how it ended; a server stream's first
    message is awaited, then the call cancelled."""
    who = target.metadata if metadata is None else metadata
    path = _path(method)
    if METHODS[method].server_streaming:
        stream = target.channel.unary_stream(
            path, request_serializer=None, response_deserializer=None
        )

        def first() -> bytes:
            responses = stream(_body(request), timeout=CALL_TIMEOUT, metadata=who)
            try:
                for message in responses:
                    return bytes(message)
                return b""
            finally:
                responses.cancel()

        return _outcome(first)
    unary = target.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    return _outcome(lambda: bytes(unary(_body(request), timeout=CALL_TIMEOUT, metadata=who)))


def call(
    target: Target, method: str, request: Message | bytes, metadata: Metadata | None = None
) -> tuple[grpc.StatusCode, bytes]:
    """One request: its status, and the answer's bytes when OK."""
    outcome = answer(target, method, request, metadata)
    return outcome.code, outcome.body


@dataclass
class OperationsSeeded:
    """What the operations server holds, by the request field names that carry it, and a
    valid request of each method to mutate."""

    known: dict[str, list[str]] = field(default_factory=dict)
    bases: dict[str, list[Message]] = field(default_factory=dict)
    # Operations the seeding started; any other one a fuzzed request starts is cancelled at
    # once, so that nothing is retried on a timer while refusals are judged.
    operation_ids: set[str] = field(default_factory=set)


def seed_operations(target: Target, admin: Metadata, worker: Metadata) -> OperationsSeeded:
    """Adds to seed.py's: more dead letters, a redrive following its retried item, a
    cancelled one, and the worker rows of another control plane; then the valid requests."""
    stub = workflow_service_pb2_grpc.WorkflowServiceStub(target.channel)
    runs = []
    for index in range(EXTRA_DEAD_LETTERS):
        order = f"order-extra-{index}"
        started = stub.StartRun(
            ws.StartRunRequest(
                workflow_name="fuzz-task",
                input=json_payload({"order": order, "amount": index}),
                request_id=order,
            ),
            timeout=CALL_TIMEOUT,
            metadata=admin,
        )
        runs.append(started.run_id)
    dead_letter_tasks(target.channel, EXTRA_DEAD_LETTERS, worker)
    dead = target.seeded.runs["fuzz-task"] + runs
    seeded = OperationsSeeded()
    followed = _start(target, admin, [dead[0]], rate=100.0, request_id=FOLLOWED_REQUEST)
    cancelled = _start(target, admin, dead[1:3], rate=0.001, request_id=CANCELLED_REQUEST)
    code, _ = call(
        target,
        "OperationService.CancelOperation",
        opb.CancelOperationRequest(operation_id=cancelled, reason="seeded"),
        admin,
    )
    assert code == OK, code
    seeded.operation_ids = {followed, cancelled}
    _record_workers(target.control_plane.database_url)
    # The runner marks the cancelled operation done on its next pass, if it retried none.
    quiet(target)
    tokens = [
        _token(target, admin, "OperationService.ListOperations", opb.ListOperationsRequest()),
        _token(
            target,
            admin,
            "OperationService.ListOperationItems",
            opb.ListOperationItemsRequest(operation_id=cancelled),
        ),
        _token(
            target,
            admin,
            "WorkerAdminService.ListWorkers",
            wapb.ListWorkersRequest(include_stale=True),
        ),
    ]
    seeded.known = {
        "namespace": ["", "default"],
        "operation_id": [followed, cancelled],
        "run_ids": dead,
        "run_id": dead,
        "page_token": tokens,
        "request_id": [FOLLOWED_REQUEST, CANCELLED_REQUEST],
        "step_type": [STEP_TYPE],
        "error_type": [ERROR_TYPE],
        "workflow_name": ["fuzz-task", "fuzz-approval", "fuzz-event"],
        "workflow_version": ["1", "latest", ""],
        "from_node": ["charge", "review", "wait", "after"],
        "run_id_prefix": [run_id[:8] for run_id in dead[:2]],
    }
    seeded.bases = _bases(followed, cancelled, dead[3:], tokens)
    return seeded


def _start(
    target: Target, admin: Metadata, run_ids: Sequence[str], rate: float, request_id: str
) -> str:
    request = opb.StartRedriveRequest(
        selection=opb.RedriveSelection(run_ids=run_ids),
        rate_per_second=rate,
        comment="seeded",
        request_id=request_id,
    )
    code, body = call(target, "OperationService.StartRedrive", request, admin)
    assert code == OK, code
    return opb.StartRedriveResponse.FromString(body).operation.id


def _token(target: Target, admin: Metadata, method: str, request: Message) -> str:
    request.page_size = 1  # type: ignore[attr-defined]
    code, body = call(target, method, request, admin)
    assert code == OK, (method, code)
    token = response_class(method).FromString(body).next_page_token  # type: ignore[attr-defined]
    assert token, f"{method} gave no second page"
    return str(token)


def _record_workers(database_url: str) -> None:
    """Three streams another control plane holds, and two it stopped confirming ten minutes
    ago, as that control plane would have written them."""
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    rows = []
    for index in range(5):
        live = index < 3
        rows.append(
            {
                "id": f"fuzz-session-{index}",
                "namespace": "default",
                "worker_id": f"fuzz-remote-{index}",
                "principal": "fuzz-worker",
                "step_types": f'[["{STEP_TYPE}", "1"], ["fuzz-other", "{index}"]]',
                "credit": index,
                "draining": index == 1,
                "control_plane": ELSEWHERE,
                "lease_seconds": 30.0,
                "connected_at": now - timedelta(hours=1),
                "seen_at": now if live else now - timedelta(minutes=11),
                "expires_at": now + timedelta(days=1) if live else now - timedelta(minutes=10),
                "heard_at": now - timedelta(seconds=index),
            }
        )
    try:
        with engine.begin() as connection:
            connection.execute(insert(worker_sessions), rows)
    finally:
        engine.dispose()


def _bases(
    followed: str, cancelled: str, dead: list[str], tokens: list[str]
) -> dict[str, list[Message]]:
    operations_token, items_token, workers_token = tokens
    selection = opb.RedriveSelection(
        filter=ws.DeadLetterFilter(error_type=ERROR_TYPE, step_type=STEP_TYPE), run_ids=dead
    )
    return {
        "OperationService.StartRedrive": [
            opb.StartRedriveRequest(selection=selection, dry_run=True, rate_per_second=50),
            opb.StartRedriveRequest(
                selection=selection,
                rate_per_second=200,
                comment="fuzz",
                request_id=f"fuzz-start-{time.time_ns()}",
            ),
            opb.StartRedriveRequest(
                selection=opb.RedriveSelection(run_ids=dead[:1], limit=1),
                rate_per_second=100,
                request_id=FOLLOWED_REQUEST,
            ),
        ],
        "OperationService.GetOperation": [
            opb.GetOperationRequest(operation_id=followed),
            opb.GetOperationRequest(operation_id=cancelled, namespace="default"),
        ],
        "OperationService.WatchOperation": [
            opb.WatchOperationRequest(operation_id=followed),
            opb.WatchOperationRequest(operation_id=cancelled),
        ],
        "OperationService.CancelOperation": [
            opb.CancelOperationRequest(operation_id=cancelled, reason="again"),
            opb.CancelOperationRequest(
                operation_id=followed, reason="fuzz", request_id="fuzz-cancel"
            ),
        ],
        "OperationService.ListOperations": [
            opb.ListOperationsRequest(page_size=1, page_token=operations_token),
            opb.ListOperationsRequest(running_only=True),
        ],
        "OperationService.ListOperationItems": [
            opb.ListOperationItemsRequest(
                operation_id=cancelled, page_size=1, page_token=items_token
            ),
            opb.ListOperationItemsRequest(
                operation_id=cancelled, state=opb.OPERATION_ITEM_STATE_CANCELLED
            ),
        ],
        "OperationService.StartRunAction": [
            opb.StartRunActionRequest(
                selection=opb.RunSelection(filter=ws.RunFilter(workflow_name="fuzz-approval")),
                action=opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE),
                dry_run=True,
                rate_per_second=10,
            ),
            opb.StartRunActionRequest(
                selection=opb.RunSelection(
                    filter=ws.RunFilter(workflow_name="fuzz-event", workflow_version="1")
                ),
                action=opb.RunAction(type=opb.RUN_ACTION_TYPE_PAUSE),
                rate_per_second=100,
                comment="fuzz",
                request_id="fuzz-pause",
            ),
            opb.StartRunActionRequest(
                selection=opb.RunSelection(
                    filter=ws.RunFilter(workflow_name="fuzz-task"), run_ids=dead[:2], limit=2
                ),
                action=opb.RunAction(type=opb.RUN_ACTION_TYPE_FORK, from_node="charge"),
                dry_run=True,
                rate_per_second=5,
            ),
        ],
        "WorkerAdminService.ListWorkers": [
            wapb.ListWorkersRequest(page_size=1, page_token=workers_token, include_stale=True),
            wapb.ListWorkersRequest(page_size=2),
        ],
        "WorkerAdminService.ListQueuedStepTypes": [
            wapb.ListQueuedStepTypesRequest(),
            wapb.ListQueuedStepTypesRequest(uncovered_only=True, namespace="default"),
        ],
    }


def quiet(target: Target, window: float = QUIET_SECONDS, timeout: float = 60.0) -> None:
    """Waits until the database has not changed for `window` seconds: what an accepted
    write set in motion has been done, including what the operation runner does on its
    next pass (it looks at unfinished operations every half second)."""
    deadline = time.monotonic() + timeout
    last, since = target.fingerprint(), time.monotonic()
    while time.monotonic() - since < window:
        assert time.monotonic() < deadline, "the database did not settle"
        time.sleep(0.05)
        now = target.fingerprint()
        if now != last:
            last, since = now, time.monotonic()


def cancel_started(target: Target, seeded: OperationsSeeded, admin: Metadata) -> None:
    """Cancels every unfinished operation the seeding did not start (a fuzzed request's)."""
    code, body = call(
        target,
        "OperationService.ListOperations",
        opb.ListOperationsRequest(running_only=True, page_size=1000),
        admin,
    )
    assert code == OK, code
    for operation in opb.ListOperationsResponse.FromString(body).operations:
        if operation.id in seeded.operation_ids:
            continue
        request = opb.CancelOperationRequest(
            namespace=operation.namespace, operation_id=operation.id, reason="fuzz cleanup"
        )
        code, _ = call(target, "OperationService.CancelOperation", request, admin)
        # Completed meanwhile: nothing left to cancel.
        assert code in (OK, grpc.StatusCode.FAILED_PRECONDITION), code
