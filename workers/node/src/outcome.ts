/** The messages that end an attempt: Complete, Fail or HandBack, and payload encoding. */

import type { Payload } from "./gen/surefoot/v1/common";
import type { WorkerMessage } from "./gen/surefoot/v1/worker_service";
import { NonRetryableError, RetryLaterError } from "./errors";

export const JSON_ENCODING = "json/plain";
// Stack traces go to the attempt's row and the console; 8 KB keeps the useful frames.
const MAX_DETAILS = 8 * 1024;

export function encodeJson(value: unknown): Payload {
  const text = JSON.stringify(value === undefined ? null : value);
  if (text === undefined) throw new TypeError(`${typeof value} is not JSON`);
  return { encoding: JSON_ENCODING, data: Buffer.from(text, "utf8") };
}

/** The JSON value of a payload; throws for another encoding or invalid JSON. */
export function decodeJson(payload: Payload | undefined): unknown {
  if (payload === undefined || payload.data.length === 0) return null;
  if (payload.encoding !== "" && payload.encoding !== JSON_ENCODING) {
    throw new Error(`input encoding ${JSON.stringify(payload.encoding)} is not ${JSON_ENCODING}`);
  }
  return JSON.parse(Buffer.from(payload.data).toString("utf8"));
}

export function completed(taskId: string, attempt: number, output: unknown): WorkerMessage {
  let payload: Payload;
  try {
    payload = encodeJson(output);
  } catch (error) {
    // Running the same code again would return the same unencodable output.
    return failedWith(taskId, attempt, "OutputNotSerializable", `step output is not JSON: ${error}`, false);
  }
  return { message: { $case: "complete", value: { taskId, attempt, output: payload } } };
}

export function failed(taskId: string, attempt: number, error: unknown): WorkerMessage {
  if (error instanceof NonRetryableError) {
    return failedWith(taskId, attempt, error.type, error.message, false, stackOf(error));
  }
  if (error instanceof RetryLaterError) {
    return failedWith(taskId, attempt, error.type, error.message, true, stackOf(error), error.retryAfterSeconds);
  }
  if (error instanceof Error) {
    return failedWith(taskId, attempt, error.name || "Error", error.message, true, stackOf(error));
  }
  return failedWith(taskId, attempt, "Error", String(error), true);
}

export function failedWith(
  taskId: string,
  attempt: number,
  errorType: string,
  message: string,
  retryable: boolean,
  details = "",
  retryAfterSeconds = 0,
): WorkerMessage {
  return {
    message: {
      $case: "fail",
      value: { taskId, attempt, errorType, message, retryable, details, retryAfterSeconds },
    },
  };
}

export function handedBack(taskId: string, attempt: number, reason: string): WorkerMessage {
  return { message: { $case: "handBack", value: { taskId, attempt, reason } } };
}

function stackOf(error: Error): string {
  const stack = error.stack ?? "";
  return stack.length <= MAX_DETAILS ? stack : stack.slice(0, MAX_DETAILS) + "\n... (truncated)";
}
