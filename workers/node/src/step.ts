/** Step types: what a worker declares in its Hello, and the handler that runs each task. */

import {
  Idempotency,
  type RetryPolicy as RetryPolicyMessage,
  type StepTypeDeclaration,
} from "./gen/surefoot/v1/common";
import type { StepContext } from "./context";
import { StepDeclarationError } from "./errors";

/**
 * How the step behaves when run more than once (law 6: a declaration is a contract):
 * - "key": the handler dedupes its effects downstream with `ctx.idempotencyKey`;
 * - "natural": running it again has no further effect;
 * - "none": never retried automatically; a crash mid-step sends it to a person.
 */
export type IdempotencyKind = "key" | "natural" | "none";

/** The step type's default retry policy; unset fields take the control plane's defaults. */
export interface RetryPolicy {
  /** Total attempts including the first. */
  maxAttempts?: number;
  initialIntervalSeconds?: number;
  backoffCoefficient?: number;
  maxIntervalSeconds?: number;
  /** Fraction in [0, 1]; 0 means no jitter. */
  jitter?: number;
  /** Error types that go to a person at once. */
  nonRetryableErrorTypes?: string[];
}

/** A handler: the step's input (decoded JSON) in, its output (JSON-encodable) out. */
export type StepHandler<I = any, O = any> = (ctx: StepContext, input: I) => O | Promise<O>;

export interface StepOptions {
  name: string;
  /** The step type's version; "1" unless given. */
  version?: string;
  /** Required: there is no safe default. */
  idempotency: IdempotencyKind;
  retry?: RetryPolicy;
  description?: string;
}

export interface StepDefinition<I = any, O = any> {
  readonly name: string;
  readonly version: string;
  readonly idempotency: IdempotencyKind;
  readonly retry?: RetryPolicy;
  readonly description: string;
  readonly handler: StepHandler<I, O>;
}

const IDEMPOTENCY: Record<IdempotencyKind, Idempotency> = {
  key: Idempotency.IDEMPOTENCY_KEY,
  natural: Idempotency.IDEMPOTENCY_NATURAL,
  none: Idempotency.IDEMPOTENCY_NONE,
};

/**
 * Declares a step type. Throws StepDeclarationError at once (not when the first task comes)
 * for a missing or unknown idempotency, an empty name or version, or a bad retry policy.
 */
export function step<I = any, O = any>(
  options: StepOptions,
  handler: StepHandler<I, O>,
): StepDefinition<I, O> {
  const version = options.version ?? "1";
  if (!options.name) throw new StepDeclarationError("a step needs a name");
  if (!version) throw new StepDeclarationError(`step ${options.name}: the version is empty`);
  if (!(options.idempotency in IDEMPOTENCY)) {
    throw new StepDeclarationError(
      `step ${options.name}@${version}: idempotency must be "key", "natural" or "none", ` +
        `got ${JSON.stringify(options.idempotency)}`,
    );
  }
  if (typeof handler !== "function") {
    throw new StepDeclarationError(`step ${options.name}@${version}: the handler is not a function`);
  }
  const retry = options.retry;
  if (retry !== undefined) checkRetry(`${options.name}@${version}`, retry);
  return Object.freeze({
    name: options.name,
    version,
    idempotency: options.idempotency,
    retry,
    description: options.description ?? "",
    handler,
  });
}

function checkRetry(what: string, retry: RetryPolicy): void {
  const bad = (field: string, rule: string) =>
    new StepDeclarationError(`step ${what}: retry.${field} ${rule}`);
  if (retry.maxAttempts !== undefined && (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1)) {
    throw bad("maxAttempts", "must be an integer of at least 1");
  }
  for (const field of ["initialIntervalSeconds", "maxIntervalSeconds"] as const) {
    const value = retry[field];
    if (value !== undefined && !(value >= 0)) throw bad(field, "must be >= 0");
  }
  if (retry.backoffCoefficient !== undefined && !(retry.backoffCoefficient >= 1)) {
    throw bad("backoffCoefficient", "must be >= 1");
  }
  if (retry.jitter !== undefined && !(retry.jitter >= 0 && retry.jitter <= 1)) {
    throw bad("jitter", "must be in [0, 1]");
  }
}

/** The declaration sent in Hello. */
export function declarationOf(definition: StepDefinition): StepTypeDeclaration {
  const retry = definition.retry;
  const message: RetryPolicyMessage | undefined = retry && {
    maxAttempts: retry.maxAttempts ?? 0,
    initialIntervalSeconds: retry.initialIntervalSeconds ?? 0,
    backoffCoefficient: retry.backoffCoefficient ?? 0,
    maxIntervalSeconds: retry.maxIntervalSeconds ?? 0,
    jitter: retry.jitter,
    nonRetryableErrorTypes: retry.nonRetryableErrorTypes ?? [],
  };
  return {
    name: definition.name,
    version: definition.version,
    idempotency: IDEMPOTENCY[definition.idempotency],
    retry: message,
    description: definition.description,
  };
}
