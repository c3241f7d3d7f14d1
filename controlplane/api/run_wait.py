"""StartRun's `wait_seconds`: answering once the run has ended, in the same call.

A client that wants a short workflow's result starts it and waits in one round trip, as it
would call a service. The committer subscribes the call to the run's changes in the
transaction that starts it (`StartRun.follow`), before any later commit of the run, so the
end is seen the moment it commits without a read of the database. A start that found its
request id's run (a client retrying) subscribes here and reads the run once. Changes made
by another control plane sharing the database reach no subscription here: the call reads
the run again every `REREAD_SECONDS` without news.

The run is started whatever happens to the wait: a wait that runs out is answered with the
run's status then, never an error, so a client never takes a started run for a failed start.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane import errors
from controlplane.api import convert
from controlplane.api.backend import Backend
from controlplane.dispatch import operations as ops
from controlplane.engine.state import COMPLETED, TERMINAL
from controlplane.store import run_queries

MAX_WAIT_SECONDS = 3600.0
REREAD_SECONDS = 1.0


def checked_wait(request: ws.StartRunRequest) -> float:
    wait = request.wait_seconds
    if not math.isfinite(wait) or wait < 0 or wait > MAX_WAIT_SECONDS:
        raise errors.InvalidArgument.field(
            "wait_seconds", f"must be between 0 and {MAX_WAIT_SECONDS:g} seconds"
        )
    return wait


# Answered this long before the caller's deadline: a status, not DEADLINE_EXCEEDED.
DEADLINE_MARGIN_SECONDS = 0.2


def within_deadline(wait: float, time_remaining: float | None) -> float:
    """The wait, shortened to end before the call's deadline (if it has one): a caller whose
    deadline is shorter than its wait still learns that the run started, and its status."""
    if time_remaining is None:
        return wait
    return max(0.0, min(wait, time_remaining - DEADLINE_MARGIN_SECONDS))


async def wait_for_end(
    backend: Backend,
    namespace: str,
    operation: ops.StartRun,
    started: ops.StartedRun,
    wait_seconds: float,
) -> tuple[str, Any]:
    """The run's (status, output) once it has ended, or when `wait_seconds` are over."""
    status, output = started.status, started.output
    if status in TERMINAL:
        return status, output
    watches = backend.committer.watches
    watch = operation.watch
    subscribed_here = watch is None
    if watch is None:
        # A run started before (same request id): news from now on, and where it is now.
        watch = watches.subscribe(started.run_id)
        status, output = await _read(backend, namespace, started.run_id, status, output)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    try:
        while status not in TERMINAL:
            watch.woken.clear()
            news = watch.take()
            if news:
                status, output = news[-1].status, news[-1].output
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(watch.woken.wait(), min(remaining, REREAD_SECONDS))
            except TimeoutError:
                # No news from this process: another control plane may be running it.
                status, output = await _read(backend, namespace, started.run_id, status, output)
    finally:
        if subscribed_here:
            watches.unsubscribe(started.run_id, watch)
        else:
            operation.forget()
    return status, output


async def _read(
    backend: Backend, namespace: str, run_id: str, status: str, output: Any
) -> tuple[str, Any]:
    found = await backend.read(lambda c: run_queries.status_and_output(c, namespace, run_id))
    return found if found is not None else (status, output)


def answer(started: ops.StartedRun, status: str, output: Any) -> ws.StartRunResponse:
    response = ws.StartRunResponse(
        run_id=started.run_id,
        created=started.created,
        workflow_version=started.workflow_version,
        status=run_pb2.RunStatus.Value(f"RUN_STATUS_{status}"),
    )
    if status == COMPLETED:
        response.output.CopyFrom(convert.payload(output))
    return response
