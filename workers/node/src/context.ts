/** What a handler knows about the attempt it runs, and how it reports progress. */

import type { Task } from "./gen/surefoot/v1/worker_service";

/**
 * The attempt a handler runs. `signal` is aborted when the control plane cancels the
 * attempt (timeout, lost lease, CancelRun: `cancelReason` says which), when it refuses the
 * stream's report for it, or when the worker stops: pass it to fetch() and the like.
 */
export class StepContext {
  readonly taskId: string;
  readonly runId: string;
  readonly nodeId: string;
  readonly stepType: string;
  readonly stepVersion: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The same for every attempt of this step in this run: dedupe effects with it. */
  readonly idempotencyKey: string;
  /** W3C trace context of the attempt's span ("00-<trace id>-<span id>-<flags>"), or "". */
  readonly traceparent: string;
  readonly namespace: string;
  readonly workflowName: string;
  /** When the attempt times out; undefined when only the lease bounds it. */
  readonly deadline: Date | undefined;
  readonly workerId: string;
  private readonly controller = new AbortController();
  private reason = "";
  private details: { value: unknown } | undefined;

  constructor(task: Task, workerId: string) {
    this.taskId = task.taskId;
    this.runId = task.runId;
    this.nodeId = task.nodeId;
    this.stepType = task.stepType;
    this.stepVersion = task.stepVersion;
    this.attempt = task.attempt;
    this.idempotencyKey = task.idempotencyKey;
    this.traceparent = task.traceparent;
    this.namespace = task.namespace;
    this.workflowName = task.workflowName;
    this.deadline = task.deadline;
    this.workerId = workerId;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get cancelled(): boolean {
    return this.controller.signal.aborted;
  }

  /** Why the attempt was cancelled ("" while it is not). */
  get cancelReason(): string {
    return this.reason;
  }

  /** The trace id of `traceparent` (32 hex digits), or "". */
  get traceId(): string {
    const parts = this.traceparent.split("-");
    return parts.length === 4 ? parts[1] : "";
  }

  /**
   * Progress details (JSON-encodable), sent with the next heartbeat and kept with the
   * attempt; only the latest is sent. Heartbeats themselves are the worker's: a handler
   * need not call this for its lease to be extended.
   */
  heartbeat(details?: unknown): void {
    if (details !== undefined) this.details = { value: details };
  }

  /** @internal */
  takeDetails(): { value: unknown } | undefined {
    const details = this.details;
    this.details = undefined;
    return details;
  }

  /** @internal */
  cancel(reason: string): void {
    if (this.controller.signal.aborted) return;
    this.reason = reason || "cancelled by the control plane";
    this.controller.abort(new Error(this.reason));
  }
}
