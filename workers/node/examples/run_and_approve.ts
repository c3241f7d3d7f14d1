/**
 * A client through the generated code only (ts-proto + @grpc/grpc-js, no SDK): registers the
 * workflow "example-order" (an approval, then charge-card@1 of examples/worker.ts), starts a
 * run, follows it with WatchRun to its end, and approves it when the approval is requested.
 *
 *   node dist/examples/run_and_approve.js [ADDRESS]     (default 127.0.0.1:7233)
 *
 * SUREFOOT_TOKEN, if set, is sent as a bearer token (registering needs the admin role,
 * starting and watching the operator role); SUREFOOT_APPROVER_TOKEN, if set, is the
 * approver's instead for the decision (the control plane takes who decides from the
 * credential, never from the request). Exits 0 when the run completed. examples/run_and_approve.py at the
 * repository root does the same in Python.
 */

import { randomUUID } from "node:crypto";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { Idempotency, type Payload } from "../src/gen/surefoot/v1/common";
import {
  DecideApprovalRequest,
  type DecideApprovalResponse,
  ListApprovalsRequest,
  type ListApprovalsResponse,
} from "../src/gen/surefoot/v1/approval";
import { ApprovalNode, Node, TaskNode, WorkflowDefinition } from "../src/gen/surefoot/v1/definition";
import { EventType, RunStatus, runStatusToJSON, eventTypeToJSON } from "../src/gen/surefoot/v1/run";
import {
  GetRunRequest,
  type GetRunResponse,
  RegisterDefinitionRequest,
  type RegisterDefinitionResponse,
  StartRunRequest,
  type StartRunResponse,
  WatchRunRequest,
  WorkflowServiceClient,
} from "../src/gen/surefoot/v1/workflow_service";

const address = process.argv[2] ?? "127.0.0.1:7233";
const client = new WorkflowServiceClient(address, credentials.createInsecure());
function bearer(token: string | undefined): Metadata | undefined {
  if (!token) return undefined;
  const metadata = new Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}
const metadata = bearer(process.env.SUREFOOT_TOKEN) ?? new Metadata();
const approver = bearer(process.env.SUREFOOT_APPROVER_TOKEN) ?? metadata;

const definition: WorkflowDefinition = {
  ...WorkflowDefinition.fromPartial({
    name: "example-order",
    version: "1",
    description: "a manager approves an order, then the card is charged",
  }),
  nodes: [
    {
      ...Node.fromPartial({ id: "manager", next: "charge" }),
      kind: {
        $case: "approval",
        value: ApprovalNode.fromPartial({
          title: "Charge this order?",
          show: { order: "input.orderId", amount: "input.amountCents" },
        }),
      },
    },
    {
      ...Node.fromPartial({ id: "charge" }),
      kind: {
        $case: "task",
        value: TaskNode.fromPartial({
          stepType: "charge-card",
          stepVersion: "1",
          input: "input",
          idempotency: Idempotency.IDEMPOTENCY_KEY,
        }),
      },
    },
  ],
};

/** A unary call of the generated client as a promise. */
function unary<Res>(invoke: (callback: (error: ServiceError | null, response: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => {
    invoke((error, response) => (error ? reject(error) : resolve(response)));
  });
}

const json = (value: unknown): Payload => ({ encoding: "json/plain", data: Buffer.from(JSON.stringify(value)) });
const parse = (payload: Payload | undefined): unknown =>
  payload && payload.data.length ? JSON.parse(Buffer.from(payload.data).toString("utf8")) : null;

async function approve(runId: string): Promise<void> {
  const { approvals } = await unary<ListApprovalsResponse>((done) =>
    client.listApprovals(ListApprovalsRequest.fromPartial({ workflowName: "example-order", pageSize: 100 }), approver, done),
  );
  const approval = approvals.find((a) => a.runId === runId);
  if (approval === undefined) throw new Error(`no pending approval for run ${runId}`);
  console.log(`approval ${approval.id}: "${approval.title}" shows ${JSON.stringify(parse(approval.shown))}`);
  // shown_hash: the decision is refused if the approval changed since it was shown.
  const request = DecideApprovalRequest.fromPartial({
    approvalId: approval.id,
    approve: true,
    comment: "approved by the Node example",
    shownHash: approval.contentHash,
    requestId: randomUUID(),
  });
  const decided = await unary<DecideApprovalResponse>((done) => client.decideApproval(request, approver, done));
  console.log(`approval ${decided.approval?.id} decided by ${decided.approval?.decidedBy || "(anonymous)"}`);
}

async function main(): Promise<number> {
  const registered = await unary<RegisterDefinitionResponse>((done) =>
    client.registerDefinition(RegisterDefinitionRequest.fromPartial({ definition }), metadata, done),
  );
  console.log(`definition example-order@${registered.info?.version} ${registered.created ? "registered" : "already registered"}`);
  const start = StartRunRequest.fromPartial({
    workflowName: "example-order",
    input: json({ orderId: `order-${randomUUID().slice(0, 8)}`, amountCents: 4200 }),
    // A retried StartRun with the same request id gets the same run.
    requestId: randomUUID(),
  });
  const started = await unary<StartRunResponse>((done) => client.startRun(start, metadata, done));
  const runId = started.runId;
  console.log(`started run ${runId}`);

  // WatchRun sends the history from the start, then each event as it happens, and ends
  // when the run has ended.
  let status = RunStatus.RUN_STATUS_UNSPECIFIED;
  const decisions: Promise<void>[] = [];
  let failure: Error | undefined;
  const stream = client.watchRun(WatchRunRequest.fromPartial({ runId }), metadata);
  try {
    for await (const response of stream) {
      status = response.status;
      for (const event of response.events) {
        console.log(`  #${event.seq} ${eventTypeToJSON(event.type)} ${event.nodeId}`);
        if (event.type === EventType.EVENT_TYPE_APPROVAL_REQUESTED) {
          // A decision that fails would leave the run waiting for ever: stop following it.
          decisions.push(
            approve(runId).catch((error: Error) => {
              failure = error;
              stream.cancel();
            }),
          );
        }
      }
    }
  } catch (error) {
    if (failure === undefined) throw error;
  }
  await Promise.all(decisions);
  if (failure !== undefined) throw failure;
  const { run } = await unary<GetRunResponse>((done) => client.getRun(GetRunRequest.fromPartial({ runId }), metadata, done));
  console.log(`run ${runId} ${runStatusToJSON(status)} output ${JSON.stringify(parse(run?.output))}`);
  return status === RunStatus.RUN_STATUS_COMPLETED ? 0 : 1;
}

main().then(
  (code) => {
    client.close();
    process.exit(code);
  },
  (error: Error) => {
    console.error(`error: ${error.message}`);
    process.exit(2);
  },
);
