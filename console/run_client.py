"""The calls of the Run, Replay and Runs screens: reads, the live streams and the actions on
runs, each action with a request id.

A request id makes a repeated write act once: the control plane answers a repeat with the
first outcome. So the id of an action whose answer never came (a deadline, a dropped
connection) is kept, and the same action asked again — the same request, field for field,
or `again()` — goes out under the same id: if the first one acted, the repeat only fetches
its answer. Any answer (done or refused) settles the id; the next action gets a new one.
The ids are the console's one ledger (console/request_ids.py): actions are sent through
`ControlPlane.write`, as every other write of the console is.

Unary calls run the sync stubs in a thread, as console/client.py explains; the streams are
iterated in a thread of their own (see console/live_history.py) and cancelled from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from surefoot.v1 import (
    approval_pb2,
    common_pb2,
    operation_service_pb2,
    operation_service_pb2_grpc,
    run_pb2,
    workflow_service_pb2_grpc,
)
from surefoot.v1 import workflow_service_pb2 as ws

from console.client import ConsoleError, ControlPlane, Unreachable
from console.request_ids import UNKNOWN_OUTCOME, outcome_unknown
from controlplane.cli.channels import transport_failure
from controlplane.cli.client import channel_connected

CALL_TIMEOUT_SECONDS = 5.0
JSON_ENCODING = "json/plain"
_RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 3000),
]

Response = TypeVar("Response")


class OutcomeUnknown(ConsoleError):
    """An action got no answer: it may have been applied. Repeating it reuses its request id."""


@dataclass
class PendingAction:
    """An action sent without an answer: what it was, to send again under the same id."""

    description: str
    rpc_name: str
    request: Message
    intent: str


class RunClient:
    """Run reads, streams and actions over a channel of its own to `control_plane`'s address,
    as its principal, in its namespace; `reachable` on `control_plane` follows these calls too.
    """

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane
        self.namespace = control_plane.namespace
        self._connection = control_plane.connection
        self._metadata = self._connection.metadata
        self._channel = self._connection.channel(_RECONNECT_OPTIONS)
        self._stub = workflow_service_pb2_grpc.WorkflowServiceStub(self._channel)
        self._operations = operation_service_pb2_grpc.OperationServiceStub(self._channel)
        self.unanswered: PendingAction | None = None

    def close(self) -> None:
        self._channel.close()

    # -- calls ---------------------------------------------------------------------------

    async def _call(self, rpc: Callable[..., Response], request: Any) -> Response:
        return await asyncio.to_thread(self._call_blocking, rpc, request)

    def _call_blocking(self, rpc: Callable[..., Response], request: Any) -> Response:
        try:
            response = rpc(request, timeout=CALL_TIMEOUT_SECONDS, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self.translate(exc) from exc
        except ValueError as exc:  # the channel was closed under a call: the screen is gone
            raise ConsoleError(str(exc)) from exc
        self.control_plane.reachable = True
        return response

    def translate(self, exc: grpc.RpcError) -> ConsoleError:
        """A failed call as one line; unreachable only when nothing answers at the address."""
        call: Any = exc
        code: grpc.StatusCode = call.code()
        details = " ".join((call.details() or "").split())
        if code in UNKNOWN_OUTCOME and not channel_connected(self._channel):
            self.control_plane.reachable = False
            failure = transport_failure(self._connection, details)
            address = self._connection.address
            return Unreachable(failure or f"control plane at {address} is unreachable")
        self.control_plane.reachable = True
        return ConsoleError(f"{code.name}: {details}" if details else code.name)

    async def _act(self, description: str, rpc_name: str, request: Any, intent: str) -> Any:
        """Send a write through the console's ledger (`ControlPlane.write`): the request id
        of the same request left unanswered, if any.

        Args:
            description: What the operator asked, for the messages (`retry b`).
            intent: The change and its target (`retry RUN:b`), as the ledger keys it.

        Raises:
            ReadOnly: the console was started with --readonly; nothing is sent.
            OutcomeUnknown: no answer came; the request id is kept for a repeat.
            ConsoleError: the control plane refused (its status and message).
        """
        rpc = getattr(self._stub_for(rpc_name), rpc_name)
        try:
            response = await self.control_plane.write(rpc, request, intent)
        except ConsoleError as exc:
            if outcome_unknown(exc):
                self.unanswered = PendingAction(description, rpc_name, request, intent)
                raise OutcomeUnknown(
                    f"{description}: no answer ({exc}); it may have been applied — send it "
                    "again and its request id makes it act once"
                ) from exc
            self._answered(request)
            raise
        self._answered(request)
        return response

    def _answered(self, request: Any) -> None:
        if self.unanswered is not None and self.unanswered.request is request:
            self.unanswered = None

    def _stub_for(self, rpc_name: str) -> Any:
        return self._operations if rpc_name == "StartRunAction" else self._stub

    async def again(self) -> tuple[str, Any]:
        """Send the last unanswered action again, under its request id."""
        pending = self.unanswered
        if pending is None:
            raise ConsoleError("no action waits for an answer")
        response = await self._act(
            pending.description, pending.rpc_name, pending.request, pending.intent
        )
        return pending.description, response

    # -- reading -------------------------------------------------------------------------

    async def get_run(self, run_id: str) -> run_pb2.Run:
        request = ws.GetRunRequest(namespace=self.namespace, run_id=run_id)
        return (await self._call(self._stub.GetRun, request)).run

    async def history(self, run_id: str, after_seq: int = 0) -> list[run_pb2.HistoryEvent]:
        request = ws.GetRunHistoryRequest(
            namespace=self.namespace, run_id=run_id, after_seq=after_seq
        )
        return list((await self._call(self._stub.GetRunHistory, request)).events)

    async def run_at(self, run_id: str, seq: int) -> run_pb2.RunSnapshot:
        request = ws.GetRunAtRequest(namespace=self.namespace, run_id=run_id, seq=seq)
        return (await self._call(self._stub.GetRunAt, request)).snapshot

    async def approval(self, approval_id: str) -> approval_pb2.Approval:
        request = approval_pb2.GetApprovalRequest(namespace=self.namespace, approval_id=approval_id)
        return (await self._call(self._stub.GetApproval, request)).approval

    async def list_runs(
        self, run_filter: ws.RunFilter, page_size: int, page_token: str = ""
    ) -> ws.ListRunsResponse:
        request = ws.ListRunsRequest(
            namespace=self.namespace,
            workflow_name=run_filter.workflow_name,
            workflow_version=run_filter.workflow_version,
            statuses=run_filter.statuses,
            page_size=page_size,
            page_token=page_token,
            run_id_prefix=run_filter.run_id_prefix,
        )
        if run_filter.HasField("created_after"):
            request.created_after.CopyFrom(run_filter.created_after)
        if run_filter.HasField("created_before"):
            request.created_before.CopyFrom(run_filter.created_before)
        return await self._call(self._stub.ListRuns, request)

    # -- streams (iterated in a thread; cancel() on the returned call ends them) ----------

    def watch_run(self, run_id: str, after_seq: int) -> Any:
        """The run's events after `after_seq`, live; stays open after the run ends."""
        request = ws.WatchRunRequest(
            namespace=self.namespace, run_id=run_id, after_seq=after_seq, keep_open=True
        )
        return self._stub.WatchRun(request, metadata=self._metadata)

    def watch_runs(self, run_filter: ws.RunFilter, initial_limit: int) -> Any:
        """The runs `run_filter` selects, live, with the runs of each status counted."""
        request = ws.WatchRunsRequest(
            namespace=self.namespace,
            filter=run_filter,
            initial_limit=initial_limit,
            count_by_status=True,
        )
        return self._stub.WatchRuns(request, metadata=self._metadata)

    # -- actions on one run --------------------------------------------------------------

    async def retry_step(
        self, run_id: str, node_id: str, comment: str, input_json: str | None = None
    ) -> run_pb2.Run:
        request = ws.RetryStepRequest(
            namespace=self.namespace, run_id=run_id, node_id=node_id, comment=comment
        )
        what = f"retry {node_id}"
        if input_json is not None:
            request.input.CopyFrom(json_payload(input_json))
            what += " with edited input"
        return (await self._act(what, "RetryStep", request, f"retry {run_id}:{node_id}")).run

    async def skip_step(
        self, run_id: str, node_id: str, output_json: str, comment: str
    ) -> run_pb2.Run:
        request = ws.SkipStepRequest(
            namespace=self.namespace,
            run_id=run_id,
            node_id=node_id,
            output=json_payload(output_json),
            comment=comment,
        )
        intent = f"skip {run_id}:{node_id}"
        return (await self._act(f"skip {node_id}", "SkipStep", request, intent)).run

    async def pause(self, run_id: str, reason: str) -> run_pb2.Run:
        request = ws.PauseRunRequest(namespace=self.namespace, run_id=run_id, reason=reason)
        return (await self._act("pause", "PauseRun", request, f"pause {run_id}")).run

    async def resume(self, run_id: str, reason: str = "") -> run_pb2.Run:
        request = ws.ResumeRunRequest(namespace=self.namespace, run_id=run_id, reason=reason)
        return (await self._act("resume", "ResumeRun", request, f"resume {run_id}")).run

    async def cancel(self, run_id: str, reason: str, compensate: bool) -> run_pb2.Run:
        request = ws.CancelRunRequest(
            namespace=self.namespace, run_id=run_id, reason=reason, compensate=compensate
        )
        what = "abandon" if compensate else "cancel"
        return (await self._act(what, "CancelRun", request, f"{what} {run_id}")).run

    async def fork(
        self, run_id: str, from_node: str, comment: str, input_json: str | None = None
    ) -> ws.ForkRunResponse:
        request = ws.ForkRunRequest(
            namespace=self.namespace, run_id=run_id, from_node=from_node, comment=comment
        )
        if input_json is not None:
            request.input_override.CopyFrom(json_payload(input_json))
        what = f"fork from {from_node}"
        response: ws.ForkRunResponse = await self._act(
            what, "ForkRun", request, f"fork {run_id}:{from_node}"
        )
        return response

    async def decide(
        self,
        approval_id: str,
        approve: bool,
        comment: str,
        shown_hash: str,
        output: str | None = None,
    ) -> approval_pb2.Approval:
        """`output`: the JSON text an `ai` step's human review supplies as the step's output."""
        request = approval_pb2.DecideApprovalRequest(
            namespace=self.namespace,
            approval_id=approval_id,
            approve=approve,
            comment=comment,
            shown_hash=shown_hash,
        )
        if output is not None:
            request.output.CopyFrom(json_payload(output))
        what = f"{'approve' if approve else 'reject'} {approval_id}"
        return (await self._act(what, "DecideApproval", request, what)).approval

    # -- actions on many runs: a durable operation ------------------------------------------

    async def plan_run_action(
        self, request: operation_service_pb2.StartRunActionRequest
    ) -> operation_service_pb2.RunActionPlan:
        """The dry run of `request`: how many runs it selects and applies to; writes nothing."""
        dry = operation_service_pb2.StartRunActionRequest()
        dry.CopyFrom(request)
        dry.namespace, dry.dry_run, dry.request_id = self.namespace, True, ""
        answer = await self._call(self._operations.StartRunAction, dry)
        return answer.plan  # type: ignore[no-any-return]

    async def start_run_action(
        self, request: operation_service_pb2.StartRunActionRequest, description: str
    ) -> operation_service_pb2.StartRunActionResponse:
        """Start the operation `request` describes, with a request id (see `_act`)."""
        request.namespace, request.dry_run = self.namespace, False
        # The same action on the same runs is one change, whatever its rate and comment.
        aimed = request.action.SerializeToString(deterministic=True)
        aimed += request.selection.SerializeToString(deterministic=True)
        response: operation_service_pb2.StartRunActionResponse = await self._act(
            description, "StartRunAction", request, f"run action {aimed.hex()}"
        )
        return response

    async def count(self, run_filter: ws.RunFilter) -> int:
        """How many runs `run_filter` matches (ListRuns' total, one run read)."""
        return int((await self.list_runs(run_filter, page_size=1)).total)


def json_payload(text: str) -> common_pb2.Payload:
    """A json/plain payload of text the caller has already checked is JSON."""
    return common_pb2.Payload(encoding=JSON_ENCODING, data=text.encode())
