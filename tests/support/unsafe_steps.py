"""Worker module of the test of a step that cannot be retried: `e2e-unsafe-transfer`.

The step is declared ``idempotency="none"``: it may have had its effect when its worker
dies, and nothing downstream would notice a second one. It records that it started in the
execution log (see steps.py) and then never finishes, so that the test can SIGKILL its
worker mid-step. The module also serves steps.py's ``e2e-work``, so that a worker of it has
other work to show that it is live.

Like steps.py it runs in the worker subprocess and must not import the tests' helpers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from surefoot_worker import StepContext, step

from tests.support.steps import _record, work

__all__ = ["transfer", "work"]


@step("e2e-unsafe-transfer", idempotency="none")
async def transfer(ctx: StepContext, input: dict[str, Any]) -> dict[str, Any]:
    """Starts a transfer and never returns: only a crash ends it."""
    _record(ctx, input, "started")
    while True:
        await asyncio.sleep(0.2)
