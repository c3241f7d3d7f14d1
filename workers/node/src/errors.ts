/** Errors that are part of the SDK's public surface (the Python SDK's, under the same names). */

/** A step is declared wrongly: thrown by `step()`, when the module is loaded. */
export class StepDeclarationError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "StepDeclarationError";
  }
}

/**
 * Throw from a handler to fail the attempt without automatic retries: the step goes to a
 * person (dead letters). `type` is the recorded error type; keep it stable ("CardDeclined").
 */
export class NonRetryableError extends Error {
  readonly type: string;
  constructor(message: string, type = "NonRetryableError") {
    super(message);
    this.name = "NonRetryableError";
    this.type = type;
  }
}

/**
 * Throw from a handler to fail the attempt and have the next one start no sooner than
 * `retryAfterSeconds` from now (an HTTP Retry-After); it still counts as an attempt.
 */
export class RetryLaterError extends Error {
  readonly type: string;
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number, type = "RetryLater") {
    super(message);
    this.name = "RetryLaterError";
    this.type = type;
    this.retryAfterSeconds = Math.max(0, retryAfterSeconds);
  }
}

/** The control plane refused the Hello (conflicting declaration, bad namespace, credential):
 * reconnecting would be refused the same way, so the worker stops and says why. */
export class WorkerRejected extends Error {
  readonly code: number;
  constructor(message: string, code: number) {
    super(message);
    this.name = "WorkerRejected";
    this.code = code;
  }
}
