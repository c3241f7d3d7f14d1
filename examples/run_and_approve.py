"""A client through the generated code only (surefoot.v1 *_pb2 and grpcio, no Surefoot
client library): registers the workflow "example-order" (an approval, then charge-card@1 of
workers/node/examples/worker.ts), starts a run, follows it with WatchRun to its end, and
approves it when the approval is requested.

    uv run python examples/run_and_approve.py [ADDRESS]     (default 127.0.0.1:7233)

SUREFOOT_TOKEN, if set, is sent as a bearer token (registering needs the admin role, starting
and watching the operator role); SUREFOOT_APPROVER_TOKEN, if set, is the approver's instead
for the decision (the control plane takes who decides from the credential, never from the
request). Exits 0 when the run completed. workers/node/examples/run_and_approve.ts
does the same in TypeScript.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

import grpc
from surefoot.v1 import approval_pb2, common_pb2, definition_pb2, run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1 import workflow_service_pb2_grpc as ws_grpc

TIMEOUT = 30.0

DEFINITION = definition_pb2.WorkflowDefinition(
    name="example-order",
    version="1",
    description="a manager approves an order, then the card is charged",
    nodes=[
        definition_pb2.Node(
            id="manager",
            next="charge",
            approval=definition_pb2.ApprovalNode(
                title="Charge this order?",
                show={"order": "input.orderId", "amount": "input.amountCents"},
            ),
        ),
        definition_pb2.Node(
            id="charge",
            task=definition_pb2.TaskNode(
                step_type="charge-card",
                step_version="1",
                input="input",
                idempotency=common_pb2.IDEMPOTENCY_KEY,
            ),
        ),
    ],
)


def payload(value: Any) -> common_pb2.Payload:
    return common_pb2.Payload(encoding="json/plain", data=json.dumps(value).encode())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def value_of(message: common_pb2.Payload) -> Any:
    return json.loads(message.data) if message.data else None


def approve(
    stub: ws_grpc.WorkflowServiceStub, run_id: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    listed = stub.ListApprovals(
        approval_pb2.ListApprovalsRequest(workflow_name="example-order", page_size=100),
        timeout=TIMEOUT,
        metadata=metadata,
    )
    (approval,) = [a for a in listed.approvals if a.run_id == run_id]
    print(f'approval {approval.id}: "{approval.title}" shows {value_of(approval.shown)}')
    # shown_hash: the decision is refused if the approval changed since it was shown.
    decided = stub.DecideApproval(
        approval_pb2.DecideApprovalRequest(
            approval_id=approval.id,
            approve=True,
            comment="approved by the Python example",
            shown_hash=approval.content_hash,
            request_id=str(uuid.uuid4()),
        ),
        timeout=TIMEOUT,
        metadata=metadata,
    )
    by = decided.approval.decided_by or "(anonymous)"
    print(f"approval {decided.approval.id} decided by {by}")


def main(address: str) -> int:
    metadata = bearer(os.environ.get("SUREFOOT_TOKEN", ""))
    approver = bearer(os.environ.get("SUREFOOT_APPROVER_TOKEN", "")) or metadata
    with grpc.insecure_channel(address) as channel:
        stub = ws_grpc.WorkflowServiceStub(channel)
        registered = stub.RegisterDefinition(
            ws.RegisterDefinitionRequest(definition=DEFINITION), timeout=TIMEOUT, metadata=metadata
        )
        state = "registered" if registered.created else "already registered"
        print(f"definition example-order@{registered.info.version} {state}")
        started = stub.StartRun(
            ws.StartRunRequest(
                workflow_name="example-order",
                input=payload({"orderId": f"order-{uuid.uuid4().hex[:8]}", "amountCents": 4200}),
                # A retried StartRun with the same request id gets the same run.
                request_id=str(uuid.uuid4()),
            ),
            timeout=TIMEOUT,
            metadata=metadata,
        )
        print(f"started run {started.run_id}")

        # WatchRun sends the history from the start, then each event as it happens, and
        # ends when the run has ended.
        status = run_pb2.RUN_STATUS_UNSPECIFIED
        for response in stub.WatchRun(
            ws.WatchRunRequest(run_id=started.run_id), timeout=120, metadata=metadata
        ):
            status = response.status
            for event in response.events:
                print(f"  #{event.seq} {run_pb2.EventType.Name(event.type)} {event.node_id}")
                if event.type == run_pb2.EVENT_TYPE_APPROVAL_REQUESTED:
                    approve(stub, started.run_id, approver)

        request = ws.GetRunRequest(run_id=started.run_id)
        run = stub.GetRun(request, timeout=TIMEOUT, metadata=metadata).run
        name = run_pb2.RunStatus.Name(status)
        print(f"run {started.run_id} {name} output {json.dumps(value_of(run.output))}")
        return 0 if status == run_pb2.RUN_STATUS_COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:7233"))
