"""The no-op steps `surefoot bench` runs: they measure the engine, not the work."""

from __future__ import annotations

from typing import Any

from surefoot_worker import StepContext, step


@step("bench-noop", idempotency="natural")
async def bench_noop(ctx: StepContext, input: Any) -> dict[str, Any]:
    return {"node": ctx.node_id}
