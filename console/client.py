"""The console's connection to the control plane: the WorkflowService calls the screens make.

The sync gRPC stubs run in a thread (`asyncio.to_thread`) rather than `grpc.aio`: an aio
channel is bound to the event loop that created it and the process-wide aio runtime has
trouble with several loops in one process (each `App.run_test()` of the tests is one), while
a blocking call in a thread never blocks Textual's loop and is the same client code the CLI
runs. Failures come out as ConsoleError, one line an operator can read, never a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from surefoot.v1 import (
    approval_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    common_pb2,
    run_pb2,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.channels import Connection, transport_failure
from controlplane.cli.client import channel_connected

# Short enough that a screen refreshing every second notices a dead server quickly.
CALL_TIMEOUT_SECONDS = 5.0
JSON_ENCODING = "json/plain"
# gRPC backs off up to 2 minutes between reconnects to a dead server; an operator watching
# the console during an outage wants it back within seconds of the control plane.
_RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 3000),
]

Response = TypeVar("Response")


class ConsoleError(Exception):
    """A call that did not succeed, as one line: `FAILED_PRECONDITION: run ... is RUNNING`."""


class Unreachable(ConsoleError):
    """No control plane answers at the address."""


class ControlPlane:
    """WorkflowService calls bound to one connection (address, token, TLS) and namespace.

    A plain address string is a plaintext connection carrying `token`. `reachable` is what
    the last call learnt, for the connection status line.
    """

    def __init__(self, connection: Connection | str, namespace: str, token: str = "") -> None:
        if isinstance(connection, str):
            connection = Connection(address=connection, token=token.strip())
        self.connection = connection
        self.address = connection.address
        self.namespace = namespace
        self._metadata: tuple[tuple[str, str], ...] = connection.metadata
        self._channel = connection.channel(_RECONNECT_OPTIONS)
        self._stub = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self._audit = audit_service_pb2_grpc.AuditServiceStub(self._channel)
        self.reachable: bool | None = None  # None until the first call comes back

    def close(self) -> None:
        self._channel.close()

    async def _call(self, rpc: Callable[..., Response], request: Any) -> Response:
        return await asyncio.to_thread(self._call_blocking, rpc, request)

    def _call_blocking(self, rpc: Callable[..., Response], request: Any) -> Response:
        try:
            response = rpc(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._translate(exc) from exc
        except ValueError as exc:  # the channel was closed under a call: the app is quitting
            raise ConsoleError(str(exc)) from exc
        self.reachable = True
        return response

    def _translate(self, exc: grpc.RpcError) -> ConsoleError:
        call: Any = exc  # a failed unary call is both the RpcError and the grpc.Call
        code: grpc.StatusCode = call.code()
        unreachable_codes = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        # A server that answers UNAVAILABLE (draining, database down) has a connected channel;
        # only a channel that cannot connect means that nothing is listening there.
        details = " ".join((call.details() or "").split())
        if code in unreachable_codes and not self._connected():
            self.reachable = False
            failure = transport_failure(self.connection, details)
            return (
                Unreachable(failure)
                if failure
                else Unreachable(f"control plane at {self.address} is unreachable")
            )
        self.reachable = True
        return ConsoleError(f"{code.name}: {details}" if details else code.name)

    def _connected(self) -> bool:
        return channel_connected(self._channel)

    # -- reading ---------------------------------------------------------------------------

    async def list_runs(self, statuses: Sequence[run_pb2.RunStatus.ValueType]) -> list[run_pb2.Run]:
        request = ws.ListRunsRequest(namespace=self.namespace, statuses=statuses, page_size=200)
        return list((await self._call(self._stub.ListRuns, request)).runs)

    async def get_run(self, run_id: str) -> run_pb2.Run:
        request = ws.GetRunRequest(namespace=self.namespace, run_id=run_id)
        return (await self._call(self._stub.GetRun, request)).run

    async def history(self, run_id: str, after_seq: int = 0) -> list[run_pb2.HistoryEvent]:
        request = ws.GetRunHistoryRequest(
            namespace=self.namespace, run_id=run_id, after_seq=after_seq
        )
        return list((await self._call(self._stub.GetRunHistory, request)).events)

    async def dead_letters(self) -> list[ws.DeadLetter]:
        request = ws.ListDeadLettersRequest(namespace=self.namespace, page_size=500)
        return list((await self._call(self._stub.ListDeadLetters, request)).dead_letters)

    async def dead_letter_groups(self) -> list[ws.DeadLetterGroup]:
        request = ws.ListDeadLettersRequest(namespace=self.namespace, grouped=True)
        return list((await self._call(self._stub.ListDeadLetters, request)).groups)

    async def pending_approvals(self) -> list[approval_pb2.Approval]:
        request = approval_pb2.ListApprovalsRequest(namespace=self.namespace, page_size=500)
        return list((await self._call(self._stub.ListApprovals, request)).approvals)

    # -- deciding --------------------------------------------------------------------------

    async def retry_step(self, run_id: str, node_id: str, input_json: str | None) -> run_pb2.Run:
        request = ws.RetryStepRequest(namespace=self.namespace, run_id=run_id, node_id=node_id)
        if input_json is not None:
            request.input.CopyFrom(json_payload(input_json))
        return (await self._call(self._stub.RetryStep, request)).run

    async def skip_step(self, run_id: str, node_id: str, output_json: str) -> run_pb2.Run:
        request = ws.SkipStepRequest(
            namespace=self.namespace,
            run_id=run_id,
            node_id=node_id,
            output=json_payload(output_json),
        )
        return (await self._call(self._stub.SkipStep, request)).run

    async def abandon_run(self, run_id: str) -> run_pb2.Run:
        request = ws.CancelRunRequest(
            namespace=self.namespace,
            run_id=run_id,
            compensate=True,
            reason="abandoned from the console",
        )
        return (await self._call(self._stub.CancelRun, request)).run

    async def redrive(self, group: ws.DeadLetterGroup) -> ws.RedriveDeadLettersResponse:
        request = ws.RedriveDeadLettersRequest(
            namespace=self.namespace,
            filter=ws.DeadLetterFilter(
                workflow_name=group.workflow_name,
                step_type=group.step_type,
                error_type=group.error_type,
            ),
        )
        return await self._call(self._stub.RedriveDeadLetters, request)

    async def decide_approval(
        self, approval_id: str, approve: bool, comment: str, shown_hash: str = ""
    ) -> approval_pb2.Approval:
        """`shown_hash`: of the approval as displayed; refused if it now shows otherwise."""
        request = approval_pb2.DecideApprovalRequest(
            namespace=self.namespace,
            approval_id=approval_id,
            approve=approve,
            comment=comment,
            shown_hash=shown_hash,
        )
        return (await self._call(self._stub.DecideApproval, request)).approval

    async def verify_run(self, run_id: str) -> audit_service_pb2.RunVerification:
        """Whether the run's history is the hash chain the control plane wrote."""
        request = audit_service_pb2.VerifyRunsRequest(namespace=self.namespace, run_ids=[run_id])
        return (await self._call(self._audit.VerifyRuns, request)).runs[0]


def json_payload(text: str) -> common_pb2.Payload:
    """A json/plain payload of text the caller has already checked is JSON."""
    return common_pb2.Payload(encoding=JSON_ENCODING, data=text.encode())
