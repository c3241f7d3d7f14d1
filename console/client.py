"""The console's connection to the control plane: every call the screens make.

The sync gRPC stubs run in a thread (`asyncio.to_thread`) rather than `grpc.aio`: an aio
channel is bound to the event loop that created it and the process-wide aio runtime has
trouble with several loops in one process (each `App.run_test()` of the tests is one), while
a blocking call in a thread never blocks Textual's loop and is the same client code the CLI
runs. Failures come out as ConsoleError, one line an operator can read, never a traceback.

Reads go through `read(rpc, request)`, changes through `write(rpc, request, intent)`: a
write carries a request id, and the same intent repeated after an unknown outcome (a timeout,
an unreachable server) carries the same id again, so the server acts once. A read-only
console refuses every write here, whatever screen asked. A screen needing an RPC that has no
helper below calls `read`/`write` with the stub (`control_plane.workflows.PauseRun`, ...).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from surefoot.v1 import (
    approval_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    common_pb2,
    credential_service_pb2,
    credential_service_pb2_grpc,
    definition_pb2,
    evaluation_service_pb2,
    evaluation_service_pb2_grpc,
    operation_service_pb2_grpc,
    run_pb2,
    worker_admin_service_pb2,
    worker_admin_service_pb2_grpc,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from console.request_ids import UNKNOWN_OUTCOME, RequestIds
from controlplane import telemetry
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


class ReadOnly(ConsoleError):
    """A change asked of a console started with --readonly."""


@dataclass(frozen=True)
class Identity:
    """Who the control plane takes this console for (WhoAmI)."""

    principal: str
    roles: tuple[str, ...]  # in the console's namespace, with those they imply
    groups: tuple[str, ...]
    source: str  # "credential", "dev" or "no-auth"

    @property
    def role(self) -> str:
        """The strongest role held, for the header."""
        for role in ("admin", "operator", "approver", "viewer", "worker"):
            if role in self.roles:
                extra = "+approver" if role == "operator" and "approver" in self.roles else ""
                return role + extra
        return "no role"


@dataclass(frozen=True)
class Page:
    """One page of a list: its items, where the next starts ("" after the last), the total
    when the server says it (None: unknown until the last page is read)."""

    items: list[Any]
    next_token: str
    total: int | None = None


class ControlPlane:
    """The calls of one console: one connection (address, token, TLS) and one namespace.

    A plain address string is a plaintext connection carrying `token`. `reachable` is what
    the last call learnt, for the header; `identity` is filled by `who_am_i`.
    """

    def __init__(
        self,
        connection: Connection | str,
        namespace: str,
        token: str = "",
        *,
        readonly: bool = False,
    ) -> None:
        if isinstance(connection, str):
            connection = Connection(address=connection, token=token.strip())
        self.connection = connection
        self.address = connection.address
        self.namespace = namespace
        self.readonly = readonly
        self._metadata: tuple[tuple[str, str], ...] = connection.metadata
        channel = connection.channel(_RECONNECT_OPTIONS)
        self._channel = telemetry.traced_channel(channel, "surefoot-console")
        self.workflows = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self.operations = operation_service_pb2_grpc.OperationServiceStub(self._channel)
        self.workers = worker_admin_service_pb2_grpc.WorkerAdminServiceStub(self._channel)
        self.credentials = credential_service_pb2_grpc.CredentialServiceStub(self._channel)
        self._audit = audit_service_pb2_grpc.AuditServiceStub(self._channel)
        self.evaluations = evaluation_service_pb2_grpc.EvaluationServiceStub(self._channel)
        self.request_ids = RequestIds()
        self.reachable: bool | None = None  # None until the first call comes back
        self.identity: Identity | None = None
        self.identity_error = ""

    def close(self) -> None:
        self._channel.close()

    # -- calling ---------------------------------------------------------------------------

    async def read(self, rpc: Callable[..., Response], request: Any) -> Response:
        """`rpc(request)` in a thread; ConsoleError (one line) when it fails."""
        return await asyncio.to_thread(self._call_blocking, rpc, request)

    async def write(self, rpc: Callable[..., Response], request: Any, intent: str) -> Response:
        """A change: refused by a read-only console; `request.request_id` set from `intent`.

        `intent` names the change and its target (`retry r1:b`); repeating it after a call
        whose outcome is unknown sends the same request id, so the server acts once
        (console/request_ids.py). `rpc` may be a stub on another channel to the same
        address (RunClient's): every write of the console goes through here.
        """
        if self.readonly:
            raise ReadOnly(f"read-only console: {intent} refused")
        return await self.request_ids.send(intent, request, functools.partial(self.read, rpc))

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
        # A server that answers UNAVAILABLE (draining, database down) has a connected channel;
        # only a channel that cannot connect means that nothing is listening there.
        details = " ".join((call.details() or "").split())
        error: ConsoleError
        if code in UNKNOWN_OUTCOME and not self._connected():
            self.reachable = False
            failure = transport_failure(self.connection, details)
            error = Unreachable(failure or f"control plane at {self.address} is unreachable")
        else:
            self.reachable = True
            error = ConsoleError(f"{code.name}: {details}" if details else code.name)
        return error

    def _connected(self) -> bool:
        return channel_connected(self._channel)

    def stream(self, rpc: Callable[..., Any], request: Any) -> Iterable[Any]:
        """A server stream, blocking (run it in a thread); cancel it with `.cancel()`."""
        call: Iterable[Any] = rpc(request, metadata=self._metadata)
        return call

    # -- who am I --------------------------------------------------------------------------

    async def who_am_i(self) -> Identity:
        """Asks the control plane who this console acts as; kept in `identity`."""
        request = credential_service_pb2.WhoAmIRequest()
        try:
            answer = await self.read(self.credentials.WhoAmI, request)
        except ConsoleError as exc:
            self.identity_error = str(exc)
            raise
        roles = {
            *answer.namespaces[self.namespace].roles,
            *answer.namespaces["*"].roles,
        }
        sources = {
            credential_service_pb2.CALLER_SOURCE_DEV: "dev",
            credential_service_pb2.CALLER_SOURCE_NO_AUTH: "no-auth",
        }
        self.identity = Identity(
            principal=answer.principal,
            roles=tuple(sorted(roles)),
            groups=tuple(answer.groups),
            source=sources.get(answer.source, "credential"),
        )
        self.identity_error = ""
        return self.identity

    # -- runs ------------------------------------------------------------------------------

    async def list_runs(self, statuses: Sequence[run_pb2.RunStatus.ValueType]) -> list[run_pb2.Run]:
        request = ws.ListRunsRequest(namespace=self.namespace, statuses=statuses, page_size=200)
        return list((await self.read(self.workflows.ListRuns, request)).runs)

    async def get_run(self, run_id: str) -> run_pb2.Run:
        request = ws.GetRunRequest(namespace=self.namespace, run_id=run_id)
        return (await self.read(self.workflows.GetRun, request)).run

    async def history(self, run_id: str, after_seq: int = 0) -> list[run_pb2.HistoryEvent]:
        request = ws.GetRunHistoryRequest(
            namespace=self.namespace, run_id=run_id, after_seq=after_seq
        )
        return list((await self.read(self.workflows.GetRunHistory, request)).events)

    async def verify_run(self, run_id: str) -> audit_service_pb2.RunVerification:
        """Whether the run's history is the hash chain the control plane wrote."""
        request = audit_service_pb2.VerifyRunsRequest(namespace=self.namespace, run_ids=[run_id])
        return (await self.read(self._audit.VerifyRuns, request)).runs[0]

    async def abandon_run(self, run_id: str, comment: str = "") -> run_pb2.Run:
        request = ws.CancelRunRequest(
            namespace=self.namespace,
            run_id=run_id,
            compensate=True,
            reason=comment or "abandoned from the console",
        )
        return (await self.write(self.workflows.CancelRun, request, f"abandon {run_id}")).run

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(
        self, dl_filter: ws.DeadLetterFilter | None = None, token: str = "", size: int = 100
    ) -> Page:
        request = ws.ListDeadLettersRequest(
            namespace=self.namespace, filter=dl_filter, page_size=size, page_token=token
        )
        answer = await self.read(self.workflows.ListDeadLetters, request)
        return Page(list(answer.dead_letters), answer.next_page_token)

    async def dead_letter_groups(
        self, dl_filter: ws.DeadLetterFilter | None = None, token: str = "", size: int = 100
    ) -> Page:
        request = ws.ListDeadLettersRequest(
            namespace=self.namespace,
            filter=dl_filter,
            grouped=True,
            page_size=size,
            page_token=token,
        )
        answer = await self.read(self.workflows.ListDeadLetters, request)
        return Page(list(answer.groups), answer.next_page_token)

    async def retry_step(
        self, run_id: str, node_id: str, input_json: str | None, comment: str = ""
    ) -> run_pb2.Run:
        request = ws.RetryStepRequest(
            namespace=self.namespace, run_id=run_id, node_id=node_id, comment=comment
        )
        if input_json is not None:
            request.input.CopyFrom(json_payload(input_json))
        intent = f"retry {run_id}:{node_id}"
        return (await self.write(self.workflows.RetryStep, request, intent)).run

    async def skip_step(
        self, run_id: str, node_id: str, output_json: str, comment: str = ""
    ) -> run_pb2.Run:
        request = ws.SkipStepRequest(
            namespace=self.namespace,
            run_id=run_id,
            node_id=node_id,
            output=json_payload(output_json),
            comment=comment,
        )
        intent = f"skip {run_id}:{node_id}"
        return (await self.write(self.workflows.SkipStep, request, intent)).run

    # -- operations (redrives) -------------------------------------------------------------

    async def plan_redrive(
        self, selection: opb.RedriveSelection, rate: float
    ) -> opb.StartRedriveResponse:
        """The dry run: what a redrive of `selection` at `rate` would do; writes nothing."""
        request = opb.StartRedriveRequest(
            namespace=self.namespace, selection=selection, dry_run=True, rate_per_second=rate
        )
        return await self.read(self.operations.StartRedrive, request)

    async def start_redrive(
        self,
        selection: opb.RedriveSelection,
        rate: float,
        comment: str,
        *,
        include_unsafe: bool = False,
    ) -> opb.StartRedriveResponse:
        request = opb.StartRedriveRequest(
            namespace=self.namespace,
            selection=selection,
            rate_per_second=rate,
            comment=comment,
            include_unsafe=include_unsafe,
        )
        intent = f"redrive {selection.filter.SerializeToString(deterministic=True).hex()}"
        return await self.write(self.operations.StartRedrive, request, intent)

    async def get_operation(self, operation_id: str) -> opb.Operation:
        request = opb.GetOperationRequest(namespace=self.namespace, operation_id=operation_id)
        return (await self.read(self.operations.GetOperation, request)).operation

    async def list_operations(self, token: str = "", size: int = 100) -> Page:
        request = opb.ListOperationsRequest(
            namespace=self.namespace, page_size=size, page_token=token
        )
        answer = await self.read(self.operations.ListOperations, request)
        return Page(list(answer.operations), answer.next_page_token)

    async def operation_items(
        self,
        operation_id: str,
        state: opb.OperationItemState.ValueType,
        token: str = "",
        size: int = 100,
    ) -> Page:
        request = opb.ListOperationItemsRequest(
            namespace=self.namespace,
            operation_id=operation_id,
            state=state,
            page_size=size,
            page_token=token,
        )
        answer = await self.read(self.operations.ListOperationItems, request)
        return Page(list(answer.items), answer.next_page_token)

    async def cancel_operation(self, operation_id: str, reason: str) -> opb.Operation:
        request = opb.CancelOperationRequest(
            namespace=self.namespace, operation_id=operation_id, reason=reason
        )
        intent = f"cancel operation {operation_id}"
        return (await self.write(self.operations.CancelOperation, request, intent)).operation

    def watch_operation(self, operation_id: str) -> Iterable[opb.WatchOperationResponse]:
        """WatchOperation, blocking: iterate it in a thread; `.cancel()` ends it."""
        request = opb.WatchOperationRequest(namespace=self.namespace, operation_id=operation_id)
        return self.stream(self.operations.WatchOperation, request)

    # -- approvals -------------------------------------------------------------------------

    async def pending_approvals(self, approver: str = "", token: str = "") -> Page:
        """Pending approvals; with `approver`, those that principal (or its groups) decides."""
        request = approval_pb2.ListApprovalsRequest(
            namespace=self.namespace, approver=approver, page_size=200, page_token=token
        )
        answer = await self.read(self.workflows.ListApprovals, request)
        return Page(list(answer.approvals), answer.next_page_token)

    async def decide_approval(
        self,
        approval_id: str,
        approve: bool,
        comment: str,
        shown_hash: str = "",
        output: str | None = None,
    ) -> approval_pb2.Approval:
        """`shown_hash`: of the approval as displayed; refused if it now shows otherwise.
        `output`: JSON text the decision supplies (an AI step's human review)."""
        request = approval_pb2.DecideApprovalRequest(
            namespace=self.namespace,
            approval_id=approval_id,
            approve=approve,
            comment=comment,
            shown_hash=shown_hash,
        )
        if output is not None:
            request.output.CopyFrom(json_payload(output))
        intent = f"{'approve' if approve else 'reject'} {approval_id}"
        return (await self.write(self.workflows.DecideApproval, request, intent)).approval

    # -- workers and definitions -----------------------------------------------------------

    async def list_workers(self, token: str = "", size: int = 100) -> Page:
        request = worker_admin_service_pb2.ListWorkersRequest(
            namespace=self.namespace, page_size=size, page_token=token
        )
        answer = await self.read(self.workers.ListWorkers, request)
        return Page(list(answer.workers), answer.next_page_token)

    async def queued_step_types(self) -> list[worker_admin_service_pb2.QueuedStepType]:
        request = worker_admin_service_pb2.ListQueuedStepTypesRequest(namespace=self.namespace)
        return list((await self.read(self.workers.ListQueuedStepTypes, request)).step_types)

    async def list_definitions(self) -> list[ws.DefinitionInfo]:
        request = ws.ListDefinitionsRequest(namespace=self.namespace)
        return list((await self.read(self.workflows.ListDefinitions, request)).definitions)

    async def get_definition(
        self, name: str, version: str
    ) -> tuple[ws.DefinitionInfo, definition_pb2.WorkflowDefinition]:
        request = ws.GetDefinitionRequest(namespace=self.namespace, name=name, version=version)
        answer = await self.read(self.workflows.GetDefinition, request)
        return answer.info, answer.definition

    async def deprecate_definition(
        self, name: str, version: str, reason: str, reinstate: bool = False
    ) -> ws.DeprecateDefinitionResponse:
        request = ws.DeprecateDefinitionRequest(
            namespace=self.namespace,
            name=name,
            version=version,
            reason=reason,
            reinstate=reinstate,
        )
        verb = "reinstate" if reinstate else "deprecate"
        return await self.write(
            self.workflows.DeprecateDefinition, request, f"{verb} {name}@{version}"
        )

    async def list_evaluations(
        self, name: str, version: str = ""
    ) -> list[evaluation_service_pb2.Evaluation]:
        """The evaluations of name@version (every version when empty), newest first."""
        request = evaluation_service_pb2.ListEvaluationsRequest(
            namespace=self.namespace, workflow_name=name, workflow_version=version, page_size=50
        )
        return list((await self.read(self.evaluations.ListEvaluations, request)).evaluations)


def json_payload(text: str) -> common_pb2.Payload:
    """A json/plain payload of text the caller has already checked is JSON."""
    return common_pb2.Payload(encoding=JSON_ENCODING, data=text.encode())
