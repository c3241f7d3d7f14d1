/** Surefoot worker SDK for Node.js. */
export { StepContext } from "./context";
export { NonRetryableError, RetryLaterError, StepDeclarationError, WorkerRejected } from "./errors";
export { step, declarationOf } from "./step";
export type { IdempotencyKind, RetryPolicy, StepDefinition, StepHandler, StepOptions } from "./step";
export { Worker, SDK_NAME } from "./worker";
export type { Logger, WorkerOptions } from "./worker";
