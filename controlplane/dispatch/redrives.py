"""The operation runner: works through every unfinished operation of the database at its rate.

One per control plane, an asyncio task. Each pass, for every operation not finished:

1. claims the items due now (operation_queries.claim_due: a token bucket in the operation's
   row, locked with SKIP LOCKED, so that the rate is the operation's over all control
   planes) and acts on each through the committer, the item marked in the same transaction:
   a redrive's `RedriveItem` (the step's normal retry), a run action's `RunActionItem` (the
   one-run cancel, pause, resume or fork);
2. settles retried items whose step has finished (succeeded, or failed again) from their
   run's row, and marks the operation finished once nothing is left to retry or follow (a
   run action's items settle as they are acted on).

Nothing lives only here: a control plane killed mid-operation loses at most its claims, which
run out after `CLAIM_SECONDS`, and the next pass (of any control plane) carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row

from controlplane import errors
from controlplane.dispatch.committer import Committer
from controlplane.dispatch.operations.base import Operation
from controlplane.dispatch.operations.redrive_item import RedriveItem
from controlplane.dispatch.operations.run_action_item import RunActionItem, RunActionSpec
from controlplane.engine import state as s
from controlplane.store import operation_queries as oq
from controlplane.store.codec import load_json
from controlplane.store.database import reader
from controlplane.store.error_signatures import error_signature
from controlplane.store.reachability import DATABASE, is_unreachable, reason
from controlplane.store.run_batch import MAX_ERROR_MESSAGE

log = logging.getLogger("surefoot.redrives")

# How long a claim keeps other control planes off an item: a claim lost with its control
# plane delays those items by this much, never more.
CLAIM_SECONDS = 5.0
# A bucket left behind (no control plane ran the operation for a while) starts again with
# at most this many seconds' worth of items: no burst of everything missed.
BURST_SECONDS = 0.25
# How often retried items are looked at to see what came of them.
SETTLE_SECONDS = 0.5
# Without unfinished operations, how often to look for one another control plane started.
IDLE_SECONDS = 1.0
# The shortest sleep between passes, so that a rate of thousands is a few items a pass.
MIN_SLEEP = 0.01
SETTLE_BATCH = 1000


@dataclass
class _Followed:
    settled_at: float = 0.0


class RedriveRunner:
    def __init__(self, engine: Engine, committer: Committer) -> None:
        self._engine = engine
        self._committer = committer
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._followed: dict[str, _Followed] = {}

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redrives")

    def wake(self) -> None:
        """An operation was started here: begin it now rather than at the next idle look."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Retries submitted are the committer's now; it finishes them as it stops.
        self._in_flight.clear()

    async def _run(self) -> None:
        while True:
            try:
                delay = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database may be away; try again
                if is_unreachable(exc):
                    DATABASE.lost(exc)  # one line for the whole outage, whoever sees it first
                elif not isinstance(exc, errors.Unavailable):  # the committer's word for it
                    log.warning("operation pass failed: %s", reason(exc))
                delay = IDLE_SECONDS
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(MIN_SLEEP, delay))

    async def _pass(self) -> float:
        """One look at every unfinished operation; the seconds until the next is due."""
        pending = await asyncio.to_thread(self._read, oq.unfinished)
        if not pending:
            self._followed.clear()
            return IDLE_SECONDS
        now = time.time()
        wake_at = now + SETTLE_SECONDS
        for operation in pending:
            if operation.state == oq.RUNNING:
                claim = await asyncio.to_thread(self._claim, operation.id, now)
                if claim is not None:
                    self._retry(claim)
                    wake_at = min(wake_at, claim.next_at)
            followed = self._followed.setdefault(operation.id, _Followed())
            if now - followed.settled_at >= SETTLE_SECONDS:
                followed.settled_at = now
                await asyncio.to_thread(self._settle, operation.id)
        gone = self._followed.keys() - {operation.id for operation in pending}
        for operation_id in gone:
            del self._followed[operation_id]
        return wake_at - time.time()

    def _read(self, work: Any) -> Any:
        with reader(self._engine).connect() as connection:
            return work(connection)

    def _claim(self, operation_id: str, now: float) -> oq.Claim | None:
        with self._engine.begin() as connection:
            return oq.claim_due(connection, operation_id, now, CLAIM_SECONDS, BURST_SECONDS)

    def _retry(self, claim: oq.Claim) -> None:
        for operation in item_operations(claim):
            future = self._committer.submit(operation)
            self._in_flight.add(future)
            future.add_done_callback(self._retried)

    def _retried(self, future: asyncio.Future[Any]) -> None:
        self._in_flight.discard(future)
        if not future.cancelled() and (exc := future.exception()) is not None:
            # The item stays pending; its claim runs out and it is retried then.
            log.warning("an operation's item was not acted on: %s", exc)

    def _settle(self, operation_id: str) -> None:
        with self._engine.begin() as connection:
            rows = oq.retried_items(connection, operation_id, SETTLE_BATCH)
            now = time.time()
            oq.settle(connection, operation_id, filter(None, map(settled, rows)), now)
            oq.finish_if_done(connection, operation_id, now)


def item_operations(claim: oq.Claim) -> list[Operation]:
    """The committer operations that act on a claim's items, one per item."""
    if claim.kind == oq.REDRIVE:
        return [
            RedriveItem(
                claim.operation_id,
                claim.namespace,
                item.run_id,
                item.node_id,
                item.attempts,
                claim.principal,
                claim.comment,
            )
            for item in claim.items
        ]
    if not claim.items:
        return []
    assert claim.action is not None, f"operation {claim.operation_id} has no action"
    spec = RunActionSpec.from_json(claim.action)
    return [
        RunActionItem(
            claim.operation_id, claim.namespace, item.run_id, spec, claim.principal, claim.comment
        )
        for item in claim.items
    ]


def settled(row: Row[Any]) -> oq.Settled | None:
    """What a retried item led to, from its run's row; None while the step runs."""
    if row.state is None:
        return oq.Settled(row.run_id, oq.INTERRUPTED, reason="the run no longer exists")
    saved = load_json(row.state)
    step = saved.get("steps", {}).get(row.node_id)
    if step is not None and step.get("attempt", 0) > row.attempts:
        if step.get("status") in (s.STEP_COMPLETED, s.COMPENSATED_STEP):
            return oq.Settled(row.run_id, oq.SUCCEEDED)
        if step.get("status") == s.DEAD_LETTERED:
            error = step.get("last_error") or {}
            message = str(error.get("message", ""))[:MAX_ERROR_MESSAGE]
            return oq.Settled(
                row.run_id,
                oq.FAILED_AGAIN,
                error_type=str(error.get("type", "") or "Error")[:200],
                error_message=message,
                error_signature=error_signature(message),
            )
    if row.status in s.TERMINAL or (step is not None and step.get("status") == s.STEP_CANCELLED):
        return oq.Settled(
            row.run_id,
            oq.INTERRUPTED,
            reason=f"the run is {row.status} and the step did not finish after the retry",
        )
    if step is not None and step.get("status") == s.STEP_COMPLETED:
        # Completed without a new attempt: an operator skipped it after the retry.
        return oq.Settled(row.run_id, oq.INTERRUPTED, reason="the step was skipped")
    return None
