// The Node worker of the tests: `node node_steps.js ADDRESS`, serving step type node-work@1.
//
// Like tests/support/steps.py's e2e-work: the output is {trail: trail + [node id], attempt},
// `sleep_seconds` sleeps first (only on attempts up to `sleep_attempts` when given), and
// every execution appends a line to the file named by SUREFOOT_E2E_EXECUTION_LOG, in the
// same shape, so that the tests read Python and Node executions alike. `ignore_cancel`
// makes the sleep deaf to a Cancel; SUREFOOT_NODE_CONCURRENCY sets the window (default 4),
// SUREFOOT_TOKEN the worker credential; `echo_context` puts what ctx says in the output.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { Worker, step } = require(path.join(__dirname, "../../workers/node/dist/src/index.js"));

function record(ctx, input, phase, extra = {}) {
  const file = process.env.SUREFOOT_E2E_EXECUTION_LOG;
  if (!file) return;
  const entry = {
    phase,
    run_id: ctx.runId,
    node_id: ctx.nodeId,
    attempt: ctx.attempt,
    idempotency_key: ctx.idempotencyKey,
    step_type: ctx.stepType,
    input,
    pid: process.pid,
    time: Date.now() / 1000,
    ...extra,
  };
  // One append per line: lines of several processes never interleave.
  fs.appendFileSync(file, JSON.stringify(entry) + "\n");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

const nodeWork = step(
  {
    name: "node-work",
    version: "1",
    idempotency: "key",
    retry: { maxAttempts: 5, initialIntervalSeconds: 0.2, backoffCoefficient: 2, maxIntervalSeconds: 2 },
  },
  async (ctx, input) => {
    record(ctx, input, "started");
    const last = input.sleep_attempts;
    const seconds = last !== undefined && ctx.attempt > last ? 0 : Number(input.sleep_seconds || 0);
    // ignore_cancel: a handler that never looks at ctx.signal (its slot must be freed anyway).
    if (seconds > 0) await sleep(seconds * 1000, input.ignore_cancel ? new AbortController().signal : ctx.signal);
    const output = { trail: [...(input.trail || []), ctx.nodeId], attempt: ctx.attempt, sdk: "node" };
    if (input.echo_context) {
      output.context = {
        task_id: ctx.taskId,
        run_id: ctx.runId,
        idempotency_key: ctx.idempotencyKey,
        traceparent: ctx.traceparent,
        trace_id: ctx.traceId,
        workflow_name: ctx.workflowName,
        namespace: ctx.namespace,
        step: `${ctx.stepType}@${ctx.stepVersion}`,
        worker_id: ctx.workerId,
      };
    }
    record(ctx, input, "returned", { output });
    return output;
  },
);

const concurrency = Number(process.env.SUREFOOT_NODE_CONCURRENCY || 4);
const token = process.env.SUREFOOT_TOKEN || "";
const worker = new Worker({ address: process.argv[2], steps: [nodeWork], concurrency, token });
process.on("SIGTERM", () => worker.shutdown());
worker.run().then(
  () => process.exit(0),
  (error) => {
    console.error(`worker stopped: ${error.message}`);
    process.exit(1);
  },
);
