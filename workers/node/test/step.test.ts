// Unit tests of what needs no control plane: declarations and outcomes. Run by `npm test`
// (node --test on the build) and by tests/node_worker/test_node_unit.py in CI.
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { Idempotency } from "../src/gen/surefoot/v1/common";
import { declarationOf, NonRetryableError, RetryLaterError, step, StepDeclarationError } from "../src";
import { completed, decodeJson, failed } from "../src/outcome";

const handler = async () => null;

test("a step without an idempotency is refused when declared", () => {
  assert.throws(() => step({ name: "charge" } as never, handler), StepDeclarationError);
  assert.throws(() => step({ name: "charge", idempotency: "maybe" as never }, handler), /idempotency must be/);
});

test("a bad retry policy is refused naming the field", () => {
  assert.throws(() => step({ name: "s", idempotency: "key", retry: { maxAttempts: 0 } }, handler), /retry.maxAttempts/);
  assert.throws(() => step({ name: "s", idempotency: "key", retry: { jitter: 2 } }, handler), /retry.jitter/);
  assert.throws(() => step({ name: "", idempotency: "key" }, handler), /needs a name/);
});

test("the declaration carries the idempotency and the retry policy", () => {
  const declared = declarationOf(
    step({ name: "charge", version: "2", idempotency: "none", retry: { maxAttempts: 4, jitter: 0 } }, handler),
  );
  assert.equal(declared.name, "charge");
  assert.equal(declared.version, "2");
  assert.equal(declared.idempotency, Idempotency.IDEMPOTENCY_NONE);
  assert.equal(declared.retry?.maxAttempts, 4);
  assert.equal(declared.retry?.jitter, 0);
  assert.equal(declarationOf(step({ name: "s", idempotency: "key" }, handler)).version, "1");
});

test("errors become Fail messages with their retryability", () => {
  const body = (m: ReturnType<typeof failed>) => (m.message?.$case === "fail" ? m.message.value : undefined);
  assert.deepEqual(
    [body(failed("t", 1, new NonRetryableError("no", "CardDeclined")))?.errorType, body(failed("t", 1, new NonRetryableError("no")))?.retryable],
    ["CardDeclined", false],
  );
  const later = body(failed("t", 2, new RetryLaterError("slow down", 30)));
  assert.equal(later?.retryable, true);
  assert.equal(later?.retryAfterSeconds, 30);
  assert.equal(later?.attempt, 2);
  assert.equal(body(failed("t", 1, new TypeError("bad")))?.errorType, "TypeError");
});

test("an output that is not JSON fails the attempt instead of completing it", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const message = completed("t", 1, cyclic);
  assert.equal(message.message?.$case, "fail");
  assert.equal(message.message?.$case === "fail" && message.message.value.errorType, "OutputNotSerializable");
  const ok = completed("t", 1, undefined);
  assert.equal(ok.message?.$case === "complete" && Buffer.from(ok.message.value.output!.data).toString(), "null");
});

test("an input in another encoding is not decoded as JSON", () => {
  assert.throws(() => decodeJson({ encoding: "application/octet-stream", data: Buffer.from("x") }), /encoding/);
  assert.deepEqual(decodeJson({ encoding: "", data: Buffer.from('{"a":1}') }), { a: 1 });
  assert.equal(decodeJson(undefined), null);
});
