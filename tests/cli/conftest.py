"""Fixtures for the CLI tests: a canned WorkflowService, a free port, a CLI runner.

The fake stands in for the control plane only at the gRPC boundary, so the CLI is exercised
through its real client code (channel, deadlines, status codes, rich error details). It checks
what the CLI prints and sends; what the server does is tested with the server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from surefoot.v1 import approval_pb2, common_pb2, run_pb2, workflow_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry

ORDERS_YAML = Path(__file__).parents[2] / "workers/surefoot_worker/examples/orders.yaml"
T0 = timestamp_pb2.Timestamp(seconds=1_790_000_000)  # 2026-09-21T14:13:20Z
T1 = timestamp_pb2.Timestamp(seconds=1_790_000_001, nanos=250_000_000)


def json_payload(text: str) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=text.encode())


def sample_run() -> run_pb2.Run:
    charge = run_pb2.Step(
        node_id="charge",
        step_type="charge-card",
        status=run_pb2.STEP_STATUS_RETRY_WAIT,
        attempt=2,
        idempotency_key="run-1/charge",
        next_attempt_at=T1,
        attempts=[
            run_pb2.Attempt(
                number=1,
                worker_id="host:1:abc",
                started_at=T0,
                outcome=run_pb2.ATTEMPT_OUTCOME_FAILED,
                error=run_pb2.StepError(type="CardDeclined", message="insufficient funds"),
            ),
            run_pb2.Attempt(number=2, outcome=run_pb2.ATTEMPT_OUTCOME_LOST),
        ],
    )
    approve = run_pb2.Step(
        node_id="approve",
        kind="approval",
        status=run_pb2.STEP_STATUS_WAITING,
        attempt=1,
        idempotency_key="run-1:approve",
        waiting_for="approval 'Ship it?' of 'approve' by group:managers",
    )
    reserve = run_pb2.Step(
        node_id="reserve",
        kind="task",
        step_type="reserve-stock",
        status=run_pb2.STEP_STATUS_COMPLETED,
        attempt=1,
        idempotency_key="run-1/reserve",
        attempts=[
            run_pb2.Attempt(
                number=1, worker_id="w1", started_at=T0, outcome=run_pb2.ATTEMPT_OUTCOME_COMPLETED
            )
        ],
    )
    return run_pb2.Run(
        id="run-1",
        namespace="default",
        workflow_name="orders",
        workflow_version="1",
        status=run_pb2.RUN_STATUS_WAITING,
        input=json_payload('{"order_id": "A-1", "amount": 42}'),
        created_at=T0,
        updated_at=T1,
        current_node="charge",
        waiting_for="retry at 2026-09-21T14:13:21Z",
        steps=[reserve, charge, approve],
    )


def sample_approval(
    status: approval_pb2.ApprovalStatus.ValueType = approval_pb2.APPROVAL_STATUS_PENDING,
) -> approval_pb2.Approval:
    return approval_pb2.Approval(
        id="run-1:approve",
        namespace="default",
        run_id="run-1",
        node_id="approve",
        workflow_name="onboarding",
        workflow_version="1",
        title="Approve the new customer",
        approvers=["alice", "group:managers"],
        shown=json_payload('{"customer": "ACME Corp", "amount": 49, "plan": "team"}'),
        status=status,
        requested_at=T0,
    )


@dataclass
class FakeWorkflowService(workflow_service_pb2_grpc.WorkflowServiceServicer):
    """Records requests; refuses what tests ask it to refuse."""

    requests: list[object] = field(default_factory=list)
    # The invocation metadata of each request, in the same order.
    metadata: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, request: object, context: grpc.ServicerContext | None = None) -> None:
        sent = dict(context.invocation_metadata()) if context is not None else {}
        with self.lock:
            self.requests.append(request)
            self.metadata.append({str(k): str(v) for k, v in sent.items()})

    def RegisterDefinition(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        if request.definition.name == "refused":
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field="definition.nodes[0].task.step_type", description="is empty"
                    )
                ]
            )
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="definition refused")
            status.details.add().Pack(bad)
            context.abort_with_status(rpc_status.to_status(status))
        info = ws.DefinitionInfo(
            namespace=request.namespace,
            name=request.definition.name,
            version=request.definition.version,
            content_hash="0123456789abcdef" * 4,
            sequence=1,
        )
        return ws.RegisterDefinitionResponse(info=info, created=request.definition.version != "old")

    def GetDefinition(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        from surefoot_worker.authoring import load_definitions

        definition = load_definitions(str(ORDERS_YAML))[0]
        info = ws.DefinitionInfo(
            name=definition.name,
            version=definition.version,
            content_hash="sha256:" + "cd" * 32,
            sequence=2,
        )
        return ws.GetDefinitionResponse(info=info, definition=definition)

    def ListDefinitions(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        info = ws.DefinitionInfo(
            name="orders", version="1", content_hash="ab" * 32, sequence=1, runs_in_flight=3
        )
        return ws.ListDefinitionsResponse(definitions=[info])

    def StartRun(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        return ws.StartRunResponse(run_id="run-1", created=True, workflow_version="1")

    def GetRun(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        if request.run_id != "run-1":
            context.abort(grpc.StatusCode.NOT_FOUND, f"run {request.run_id} not found")
        return ws.GetRunResponse(run=sample_run())

    def ListRuns(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        run = sample_run()
        del run.steps[:]
        return ws.ListRunsResponse(runs=[run], next_page_token="tok-2")

    def GetRunHistory(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        events = [
            run_pb2.HistoryEvent(
                run_id="run-1",
                seq=1,
                type=run_pb2.EVENT_TYPE_RUN_STARTED,
                time=T0,
                principal="cli",
                data=json_payload('{"x": 1}'),
            ),
            run_pb2.HistoryEvent(
                run_id="run-1",
                seq=2,
                type=run_pb2.EVENT_TYPE_ATTEMPT_FAILED,
                time=T1,
                node_id="charge",
                attempt=1,
                principal="host:1:abc",
                data=json_payload('{"error": "' + "x" * 300 + '"}'),
            ),
        ]
        return ws.GetRunHistoryResponse(events=[e for e in events if e.seq > request.after_seq])

    def CancelRun(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        run = sample_run()
        run.status = (
            run_pb2.RUN_STATUS_COMPENSATING if request.compensate else run_pb2.RUN_STATUS_CANCELLED
        )
        return ws.CancelRunResponse(run=run)

    def ListApprovals(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        if request.approver == "nobody":
            return approval_pb2.ListApprovalsResponse()
        return approval_pb2.ListApprovalsResponse(
            approvals=[sample_approval()], next_page_token="tok-2"
        )

    def GetApproval(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        if request.approval_id != "run-1:approve":
            context.abort(grpc.StatusCode.NOT_FOUND, f"approval {request.approval_id} not found")
        approval = sample_approval(approval_pb2.APPROVAL_STATUS_REJECTED)
        approval.decided_by = "alice"
        approval.decided_at.CopyFrom(T1)
        approval.comment = "plan not offered in this region"
        return approval_pb2.GetApprovalResponse(approval=approval)

    def DecideApproval(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        token = dict(context.invocation_metadata()).get("authorization", "")
        if request.approval_id == "decided":
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "approval decided is already APPROVED"
            )
        if token != "Bearer alice-token":
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "bob may not decide run-1:approve")
        approval = sample_approval(
            approval_pb2.APPROVAL_STATUS_APPROVED
            if request.approve
            else approval_pb2.APPROVAL_STATUS_REJECTED
        )
        approval.decided_by = "alice"
        approval.comment = request.comment
        return approval_pb2.DecideApprovalResponse(approval=approval)

    def SendEvent(self, request, context):  # type: ignore[no-untyped-def]
        self._record(request, context)
        if request.correlation_key == "nobody-waits":
            return approval_pb2.SendEventResponse(stored=True, event_id="ev-1")
        return approval_pb2.SendEventResponse(delivered_to=["run-1", "run-2"], event_id="ev-2")


@pytest.fixture
def control_plane() -> Iterator[tuple[str, FakeWorkflowService]]:
    """A FakeWorkflowService on a free local port: its address and the fake (for its requests)."""
    # The generated stubs mark every RPC abstract; at run time the base class answers the
    # ones the fake leaves out with UNIMPLEMENTED, which is all the CLI tests need of them.
    service = FakeWorkflowService()  # type: ignore[abstract]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    workflow_service_pb2_grpc.add_WorkflowServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(grace=None)


@pytest.fixture
def unused_address() -> str:
    """An address nothing listens on: a port the OS just handed out and that was closed again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


CliRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def surefoot() -> CliRunner:
    """Runs `surefoot ARGS` as a user would: a separate process, with its exit code and output.

    SUREFOOT_* variables of the developer's shell are dropped so they cannot change a result.
    """

    def run(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SUREFOOT_")}
        environment.update(env)
        return subprocess.run(
            [sys.executable, "-m", "controlplane.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=environment,
            input=stdin,
        )

    return run


@pytest.fixture
def postgres_plane(processes: ProcessRegistry, tmp_path: Path) -> Iterator[ControlPlane]:
    """`surefoot server` on a PostgreSQL database of its own (only the test's runs and
    workers in it)."""
    with fresh_database("postgres", tmp_path) as url:
        server = ControlPlane(processes, url)
        server.start()
        yield server
        server.stop()
