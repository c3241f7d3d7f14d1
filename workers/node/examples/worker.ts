/**
 * An example worker: `node dist/examples/worker.js [ADDRESS]` (default 127.0.0.1:7233; dev
 * mode or a server with --no-auth, else set SUREFOOT_TOKEN) serving two step types.
 *
 * charge-card@1 dedupes its effect with ctx.idempotencyKey (idempotency "key"), as a payment
 * API's Idempotency-Key header would; send-receipt@1 is safe to repeat ("natural").
 */

import { NonRetryableError, RetryLaterError, step, Worker } from "../src";

interface Charge {
  orderId: string;
  amountCents: number;
}

// Stands in for a payment service that remembers idempotency keys.
const chargesByKey = new Map<string, string>();

const chargeCard = step<Charge, { chargeId: string }>(
  {
    name: "charge-card",
    version: "1",
    idempotency: "key",
    retry: { maxAttempts: 5, initialIntervalSeconds: 1, backoffCoefficient: 2, nonRetryableErrorTypes: ["CardDeclined"] },
  },
  async (ctx, input) => {
    if (input.amountCents <= 0) throw new NonRetryableError(`amount ${input.amountCents} is not positive`, "CardDeclined");
    if (input.amountCents > 1_000_000) throw new RetryLaterError("the payment service is rate limiting", 30);
    ctx.heartbeat({ stage: "charging", attempt: ctx.attempt });
    let chargeId = chargesByKey.get(ctx.idempotencyKey);
    if (chargeId === undefined) {
      chargeId = `ch_${chargesByKey.size + 1}`;
      chargesByKey.set(ctx.idempotencyKey, chargeId);
    }
    console.log(`charged ${input.amountCents} for ${input.orderId} (trace ${ctx.traceId || "none"})`);
    return { chargeId };
  },
);

const sendReceipt = step({ name: "send-receipt", idempotency: "natural" }, async (ctx, input: { to: string }) => {
  // A long step passes ctx.signal on, so that a Cancel stops it at once.
  await new Promise((resolve) => setTimeout(resolve, 10));
  if (ctx.signal.aborted) throw ctx.signal.reason;
  return { sentTo: input.to };
});

const worker = new Worker({
  address: process.argv[2] ?? "127.0.0.1:7233",
  steps: [chargeCard, sendReceipt],
  concurrency: 10,
  token: process.env.SUREFOOT_TOKEN ?? "",
});
// SIGTERM (a deploy): drain, hand back what still runs after 30 s, then exit.
process.on("SIGTERM", () => void worker.shutdown());
process.on("SIGINT", () => void worker.shutdown());
worker.run().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(`worker stopped: ${error.message}`);
    process.exit(1);
  },
);
