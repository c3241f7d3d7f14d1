/**
 * The worker: one WorkerService.Connect stream at a time, tasks in, results out.
 *
 * The contract it follows is the one in proto/surefoot/v1/worker_service.proto, as the
 * Python SDK (workers/surefoot_worker) follows it: Credit is a window, results are kept until
 * an Ack (or a Refused) names them and are resent on the next stream, whose Hello names the
 * earlier stream's session so that its leases move over; a Cancel stops the attempt and
 * frees its slot; Drain and shutdown finish what runs before the stream is closed.
 */

import * as os from "node:os";
import { randomUUID } from "node:crypto";
import { type ChannelCredentials, credentials as grpcCredentials, Metadata, status } from "@grpc/grpc-js";
import type { ClientDuplexStream, StatusObject } from "@grpc/grpc-js";
import {
  Heartbeat,
  type ServerMessage,
  type Task,
  type Welcome,
  type WorkerMessage,
  WorkerServiceClient,
} from "./gen/surefoot/v1/worker_service";
import { StepContext } from "./context";
import { WorkerRejected } from "./errors";
import { completed, decodeJson, encodeJson, failed, failedWith, handedBack } from "./outcome";
import { declarationOf, type StepDefinition } from "./step";

export const SDK_NAME = "surefoot-node/0.1.0";
const SHUTDOWN_REASON = "worker shutting down";
// After the last result, how long a draining worker waits for its Ack.
const ACK_GRACE_MS = 2000;
const DEFAULT_HEARTBEAT_SECONDS = 10;
const FIRST_RECONNECT_DELAY_MS = 100;
// Statuses with which the control plane refuses the Hello itself: trying again is refused too.
const REJECTIONS = new Set<number>([
  status.INVALID_ARGUMENT,
  status.FAILED_PRECONDITION,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
]);

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export interface WorkerOptions {
  /**
   * The control plane's gRPC address, host:port; or several (an array, or comma-separated)
   * of control planes on one database: the worker connects to one and, when it cannot be
   * reached or its stream ends, tries the next, where its leases follow it.
   */
  address: string | string[];
  steps: StepDefinition[];
  namespace?: string;
  /** How many tasks run at once: the stream's window. Default 100. */
  concurrency?: number;
  /** Shown in attempts; host:pid:random unless given. */
  workerId?: string;
  /** Bearer token of a worker credential ("" in dev mode or with --no-auth). */
  token?: string;
  /** Channel credentials (TLS); insecure unless given. */
  credentials?: ChannelCredentials;
  /** How long a shutdown or a Drain waits for running handlers. Default 30 s. */
  drainTimeoutSeconds?: number;
  /** The longest wait between two reconnects (they start at 0.1 s and double). Default 10 s. */
  maxReconnectDelaySeconds?: number;
  logger?: Logger;
}

interface Attempt {
  task: Task;
  context: StepContext;
  definition: StepDefinition;
}

interface Session {
  call: ClientDuplexStream<WorkerMessage, ServerMessage>;
  welcomed: boolean;
  draining: boolean;
  ended: boolean;
  /** Tasks of an earlier stream still running here: they count against this window. */
  owed: Set<string>;
  heartbeat?: NodeJS.Timeout;
}

export class Worker {
  readonly workerId: string;
  readonly addresses: string[];
  private readonly steps = new Map<string, StepDefinition>();
  private readonly namespace: string;
  private readonly concurrency: number;
  private readonly drainTimeoutMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly token: string;
  private readonly log: Logger;
  private readonly clients: WorkerServiceClient[];
  /** The index in `addresses` of the control plane the worker connects to. */
  private current = 0;
  /** Running attempts by task id (a task id names one attempt). */
  private readonly running = new Map<string, Attempt>();
  /** Results not yet acknowledged, by task id, in the order recorded. */
  private readonly unacked = new Map<string, WorkerMessage>();
  private session: Session | undefined;
  private lastSessionId = "";
  private accepting = true;
  private closing = false;
  private reconnectDelayMs = FIRST_RECONNECT_DELAY_MS;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connected!: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> };
  private stopped!: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> };
  private started = false;
  private shutdownPromise: Promise<void> | undefined;
  private readonly changed = new Set<() => void>();

  constructor(options: WorkerOptions) {
    if (!Array.isArray(options.steps) || options.steps.length === 0) {
      throw new TypeError("a worker needs at least one step");
    }
    for (const definition of options.steps) {
      const key = `${definition.name}@${definition.version}`;
      if (this.steps.has(key)) throw new TypeError(`step ${key} is declared twice`);
      this.steps.set(key, definition);
    }
    this.concurrency = options.concurrency ?? 100;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be an integer of at least 1, got ${options.concurrency}`);
    }
    const addresses = Array.isArray(options.address) ? options.address : options.address.split(",");
    this.addresses = addresses.map((a) => a.trim()).filter((a) => a !== "");
    if (this.addresses.length === 0) throw new TypeError("a worker needs a control plane address");
    this.namespace = options.namespace ?? "default";
    this.workerId = options.workerId ?? `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 12)}`;
    this.drainTimeoutMs = (options.drainTimeoutSeconds ?? 30) * 1000;
    this.maxReconnectDelayMs = (options.maxReconnectDelaySeconds ?? 10) * 1000;
    this.token = options.token ?? "";
    this.log = options.logger ?? {
      info: (m) => console.log(m),
      warn: (m) => console.error(m),
    };
    const channelCredentials = options.credentials ?? grpcCredentials.createInsecure();
    this.clients = this.addresses.map(
      (address) =>
        new WorkerServiceClient(address, channelCredentials, {
          "grpc.keepalive_time_ms": 20_000,
          "grpc.max_reconnect_backoff_ms": this.maxReconnectDelayMs,
        }),
    );
    this.connected = deferred();
    this.stopped = deferred();
    // Awaited by whoever needs them; not an unhandled rejection when nobody does.
    this.connected.promise.catch(() => undefined);
    this.stopped.promise.catch(() => undefined);
  }

  /** Starts the worker; resolves once the control plane has welcomed it the first time. */
  start(): Promise<void> {
    if (!this.started) {
      this.started = true;
      this.connect();
    }
    return this.connected.promise;
  }

  /** Resolves when the worker has stopped (after shutdown()); rejects with WorkerRejected. */
  run(): Promise<void> {
    this.start().catch(() => undefined);
    return this.stopped.promise;
  }

  /** The address the worker is connected (or connecting) to. */
  get address(): string {
    return this.addresses[this.current];
  }

  /** The task ids running now. */
  get inFlight(): string[] {
    return [...this.running.keys()];
  }

  /**
   * Drains and stops: sends Draining (no new task comes), waits up to drainTimeoutSeconds
   * for running handlers, hands back those still running, waits briefly for the Acks of
   * its results and half-closes the stream. Safe to call more than once.
   */
  shutdown(): Promise<void> {
    this.shutdownPromise ??= this.drainAndStop();
    return this.shutdownPromise;
  }

  private async drainAndStop(): Promise<void> {
    this.accepting = false;
    if (this.session && !this.session.draining) this.send({ message: { $case: "draining", value: {} } });
    this.log.info(`draining: waiting up to ${this.drainTimeoutMs / 1000}s for ${this.running.size} step(s)`);
    await this.until(() => this.running.size === 0, this.drainTimeoutMs);
    for (const attempt of [...this.running.values()]) {
      this.running.delete(attempt.task.taskId);
      attempt.context.cancel(SHUTDOWN_REASON);
      this.record(handedBack(attempt.task.taskId, attempt.task.attempt, SHUTDOWN_REASON));
    }
    await this.until(() => this.unacked.size === 0 || this.session === undefined, ACK_GRACE_MS);
    this.stop();
  }

  private stop(error?: Error): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.reconnectTimer);
    const session = this.session;
    if (session) {
      this.endSession(session);
      session.call.end();
      // A control plane that does not answer the half-close in a moment is not waited for.
      setTimeout(() => session.call.cancel(), 1000).unref();
    }
    if (this.unacked.size > 0) {
      this.log.warn(
        `stopped with ${this.unacked.size} result(s) not acknowledged; ` +
          "the control plane runs those steps again when their leases expire",
      );
    }
    for (const client of this.clients) client.close();
    if (error) {
      this.connected.reject(error);
      this.stopped.reject(error);
    } else {
      this.connected.reject(new Error("the worker stopped before it was welcomed"));
      this.stopped.resolve();
    }
  }

  private connect(): void {
    if (this.closing) return;
    const metadata = new Metadata();
    if (this.token) metadata.set("authorization", `Bearer ${this.token}`);
    const call = this.clients[this.current].connect(metadata);
    const session: Session = { call, welcomed: false, draining: false, ended: false, owed: new Set(this.running.keys()) };
    this.session = session;
    call.write({
      message: {
        $case: "hello",
        value: {
          namespace: this.namespace,
          workerId: this.workerId,
          stepTypes: [...this.steps.values()].map(declarationOf),
          concurrency: this.concurrency,
          sdk: SDK_NAME,
          resumeSessionIds: this.lastSessionId ? [this.lastSessionId] : [],
        },
      },
    });
    if (this.accepting) {
      call.write({ message: { $case: "credit", value: { n: this.window(session) } } });
    } else {
      session.draining = true;
      call.write({ message: { $case: "draining", value: {} } });
    }
    // Results the previous stream did not see acknowledged: the leases move here with the
    // Hello's resume_session_ids, so they are recorded once (or Refused if recorded already).
    for (const result of this.unacked.values()) call.write(result);
    call.on("data", (message: ServerMessage) => this.onMessage(session, message));
    call.on("error", () => undefined); // the status below says what happened
    call.on("status", (end: StatusObject) => this.onEnd(session, end));
  }

  private onEnd(session: Session, end: StatusObject): void {
    const wasWelcomed = session.welcomed;
    this.endSession(session);
    if (this.closing) return;
    if (!wasWelcomed && REJECTIONS.has(end.code)) {
      const error = new WorkerRejected(`${status[end.code]}: ${end.details}`, end.code);
      this.log.warn(`the control plane refused the worker: ${error.message}`);
      this.stop(error);
      return;
    }
    const endedAt = this.address;
    // Another control plane of the same database takes the leases over as well as this
    // one would; one that is down (or stopping) may not be back soon.
    if (this.addresses.length > 1) this.current = (this.current + 1) % this.addresses.length;
    // Welcomed before: try at once (on the next address if there is one); else back off.
    if (wasWelcomed) this.reconnectDelayMs = FIRST_RECONNECT_DELAY_MS;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs * 2, this.maxReconnectDelayMs);
    this.log.warn(
      `stream to ${endedAt} ended (${status[end.code] ?? end.code}: ${end.details || "no details"}); ` +
        `reconnecting to ${this.address} in ${(delay / 1000).toFixed(1)}s with ${this.running.size} step(s) running, ` +
        `${this.unacked.size} result(s) unacknowledged`,
    );
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private endSession(session: Session): void {
    if (session.ended) return;
    session.ended = true;
    clearInterval(session.heartbeat);
    if (this.session === session) this.session = undefined;
    this.notify();
  }

  private onMessage(session: Session, message: ServerMessage): void {
    const body = message.message;
    if (body === undefined || session.ended) return;
    switch (body.$case) {
      case "welcome":
        this.onWelcome(session, body.value);
        break;
      case "tasks":
        for (const task of body.value.tasks) this.onTask(session, task);
        break;
      case "ack":
        for (const taskId of body.value.taskIds) this.unacked.delete(taskId);
        this.notify();
        break;
      case "cancel":
        this.onCancel(body.value.taskId, body.value.reason);
        break;
      case "drain":
        this.onDrain(session, body.value.reason);
        break;
      case "refused":
        // This stream does not hold the task's lease: its result will never be accepted.
        this.log.warn(`the control plane refused a report for task ${body.value.taskId}: ${body.value.reason}`);
        this.unacked.delete(body.value.taskId);
        this.onCancel(body.value.taskId, `refused by the control plane: ${body.value.reason}`, false);
        this.notify();
        break;
    }
  }

  private onWelcome(session: Session, welcome: Welcome): void {
    if (session.welcomed) return;
    session.welcomed = true;
    this.lastSessionId = welcome.sessionId;
    let interval = welcome.heartbeatIntervalSeconds;
    if (!(interval > 0)) interval = welcome.leaseSeconds > 0 ? welcome.leaseSeconds / 3 : DEFAULT_HEARTBEAT_SECONDS;
    session.heartbeat = setInterval(() => this.sendHeartbeats(), interval * 1000);
    const steps = [...this.steps.keys()].join(", ");
    this.log.info(`worker ${this.workerId} connected to ${this.address}: steps ${steps}`);
    this.connected.resolve();
  }

  private onTask(session: Session, task: Task): void {
    if (this.running.has(task.taskId) || this.unacked.has(task.taskId)) return; // redelivered
    if (!this.accepting || session.draining) {
      this.record(handedBack(task.taskId, task.attempt, this.accepting ? "worker draining" : SHUTDOWN_REASON));
      return;
    }
    const definition = this.definitionFor(task);
    if (definition === undefined) {
      this.record(handedBack(task.taskId, task.attempt, `no handler for ${task.stepType}@${task.stepVersion}`));
      return;
    }
    const attempt: Attempt = { task, definition, context: new StepContext(task, this.workerId) };
    this.running.set(task.taskId, attempt);
    void this.execute(attempt);
  }

  /** The handler of a task's step type; an empty version (the workflow named none) takes any. */
  private definitionFor(task: Task): StepDefinition | undefined {
    if (task.stepVersion) return this.steps.get(`${task.stepType}@${task.stepVersion}`);
    return [...this.steps.values()].find((d) => d.name === task.stepType);
  }

  private async execute(attempt: Attempt): Promise<void> {
    const { task, context } = attempt;
    let result: WorkerMessage;
    let input: unknown;
    try {
      input = decodeJson(task.input);
    } catch (error) {
      this.finish(attempt, failedWith(task.taskId, task.attempt, "InputNotDecodable", String(error), false));
      return;
    }
    try {
      const output = await attempt.definition.handler(context, input);
      // A handler that finished despite a Cancel reports its output: its effects happened.
      result = completed(task.taskId, task.attempt, output);
    } catch (error) {
      result = context.cancelled
        ? failedWith(task.taskId, task.attempt, "Cancelled", context.cancelReason, false)
        : failed(task.taskId, task.attempt, error);
    }
    this.finish(attempt, result);
  }

  private finish(attempt: Attempt, result: WorkerMessage): void {
    // Gone already when it was cancelled, refused or handed back: that outcome was sent.
    if (this.running.get(attempt.task.taskId) !== attempt) return;
    this.running.delete(attempt.task.taskId);
    this.record(result);
    this.returnOwedSlot(attempt.task.taskId);
    this.notify();
  }

  private onCancel(taskId: string, reason: string, report = true): void {
    const attempt = this.running.get(taskId);
    if (attempt === undefined) return;
    attempt.context.cancel(reason);
    // The slot is free now, not when the handler notices: a handler that ignores its
    // signal must not keep the window taken. The Fail tells a control plane that counts
    // the task until a result comes; one that freed it on Cancel acknowledges and ignores it.
    this.running.delete(taskId);
    if (report) this.record(failedWith(taskId, attempt.task.attempt, "Cancelled", attempt.context.cancelReason, false));
    this.returnOwedSlot(taskId);
    this.notify();
  }

  private onDrain(session: Session, reason: string): void {
    if (session.draining) return;
    session.draining = true;
    this.send({ message: { $case: "draining", value: {} } });
    this.log.info(`control plane asked to drain (${reason || "no reason given"}); finishing ${this.running.size} step(s), then reconnecting`);
    void (async () => {
      // Steps still running after the timeout go on: their results go out on the next stream.
      await this.until(() => this.running.size === 0, this.drainTimeoutMs);
      await this.until(() => this.unacked.size === 0, ACK_GRACE_MS);
      if (!session.ended) session.call.end();
    })();
  }

  /** The stream's window: the concurrency less the attempts of an earlier stream still running. */
  private window(session: Session): number {
    return Math.max(0, this.concurrency - session.owed.size);
  }

  private returnOwedSlot(taskId: string): void {
    const session = this.session;
    if (session && session.owed.delete(taskId) && this.accepting && !session.draining) {
      this.send({ message: { $case: "credit", value: { n: this.window(session) } } });
    }
  }

  private sendHeartbeats(): void {
    if (this.running.size === 0) return;
    // One message for every lease; a task's progress details go in a message of their own.
    this.send({ message: { $case: "heartbeat", value: Heartbeat.fromPartial({ taskIds: [...this.running.keys()] }) } });
    for (const attempt of this.running.values()) {
      const details = attempt.context.takeDetails();
      if (details === undefined) continue;
      try {
        const payload = encodeJson(details.value);
        this.send({ message: { $case: "heartbeat", value: Heartbeat.fromPartial({ taskIds: [attempt.task.taskId], details: payload }) } });
      } catch (error) {
        this.log.warn(`heartbeat details of task ${attempt.task.taskId} are not JSON: ${error}`);
      }
    }
  }

  /** Keeps a result until acknowledged, and sends it now if a stream is open. */
  private record(result: WorkerMessage): void {
    const body = result.message;
    if (body === undefined || !("taskId" in body.value)) return;
    this.unacked.set(body.value.taskId, result);
    this.send(result);
  }

  private send(message: WorkerMessage): void {
    const session = this.session;
    if (session && !session.ended) session.call.write(message);
  }

  private notify(): void {
    for (const listener of [...this.changed]) listener();
  }

  /** Resolves when `done()` holds or after `timeoutMs`. */
  private until(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.changed.delete(check);
        resolve();
      };
      const check = () => {
        if (done()) finish();
      };
      const timer = setTimeout(finish, timeoutMs);
      this.changed.add(check);
    });
  }
}

function deferred(): { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> } {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { resolve, reject, promise };
}
