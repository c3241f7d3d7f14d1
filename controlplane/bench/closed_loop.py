"""Closed loop: N loops, each starting a run and following it to its end before the next.

This is the latency figure at a chosen concurrency, the way most systems run: a run's latency
is from its StartRun being sent to the client learning that the run completed, so it includes
the client's own round trips and nothing polls. A loop learns it one of two ways (`follow`):
"wait", the StartRun call itself answers at the end (`wait_seconds`: one call per run, as a
service is called), or "watch", StartRun then a `WatchRun` stream of the run's events until
RUN_COMPLETED (two calls, every event on the wire; StartRun's own latency shows separately).
Each setting warms up (WARMUP_SECONDS, and until every loop has finished a run) before a
window of fixed duration is measured; a run counts in the window it completed in. The loops
then finish the runs they hold, so that no setting leaves work for the next.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.bench.processes import BenchError
from controlplane.bench.report import CpuMeter, cpu_ms_per_step, percentiles
from controlplane.bench.workload import STEPS, start_request

WARMUP_SECONDS = 1.0
# A setting whose loops cannot complete a run in this long is broken, not slow.
PROGRESS_TIMEOUT = 60.0
# Between two tries of a call the control plane refused as unavailable (restart mode only).
RETRY_PAUSE_SECONDS = 0.01
# StartRun's wait in the "wait" mode: far more than a no-op run takes.
WAIT_SECONDS = 60.0
_ENDED_OTHERWISE = {
    run_pb2.EVENT_TYPE_RUN_FAILED: "FAILED",
    run_pb2.EVENT_TYPE_RUN_CANCELLED: "CANCELLED",
    run_pb2.EVENT_TYPE_RUN_COMPENSATED: "COMPENSATED",
}


@dataclass(frozen=True)
class RunTiming:
    """One run as a loop saw it; times are time.monotonic() of the bench process."""

    sent: float
    started: float
    ended: float
    # The server's time of RUN_COMPLETED: which control plane's life committed it.
    completed_at: datetime


class ClosedLoop:
    """`in_flight` loops over one stub, each starting a run and watching it to its end."""

    def __init__(
        self,
        stub: Any,
        name: str,
        in_flight: int,
        tag: str,
        survive_unavailable: bool = False,
        follow: str = "watch",
    ) -> None:
        self._stub = stub
        self._follow_mode = follow
        self._name = name
        self._in_flight = in_flight
        self._tag = tag
        # Across a restart, calls refused as UNAVAILABLE are tried again (the same request id
        # gets the same run; a watch resumes after the last event seen).
        self._survive_unavailable = survive_unavailable
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._progress = asyncio.Condition()
        self.timings: list[RunTiming] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self._in_flight)]

    async def run_for(self, seconds: float) -> None:
        """Let the loops run for `seconds`; raises what stopped one of them, if one did."""
        done, _ = await asyncio.wait(
            self._tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done:
            # A loop only ends on its own by failing.
            task.result()

    async def wait_for_run(
        self,
        what: str,
        accept: Callable[[RunTiming], bool],
        after: int = 0,
        timeout: float = PROGRESS_TIMEOUT,
    ) -> RunTiming:
        """The first run, from the `after`-th on, that `accept`s; waits for it to complete.

        Raises:
            BenchError: naming `what` was awaited, if no such run completes within `timeout`.
        """

        def found() -> RunTiming | None:
            return next((t for t in self.timings[after:] if accept(t)), None)

        async def wait() -> RunTiming:
            async with self._progress:
                await self._progress.wait_for(lambda: found() is not None)
            timing = found()
            assert timing is not None
            return timing

        waiting = asyncio.create_task(wait())
        done, _ = await asyncio.wait(
            [waiting, *self._tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiting in done:
            return waiting.result()
        waiting.cancel()
        for task in done:
            task.result()
        raise BenchError(f"{what}: no such run completed within {timeout:.0f} s")

    async def stop(self) -> None:
        """Ask the loops to end after their current run, and wait for them."""
        self._stopping = True
        done, pending = await asyncio.wait(self._tasks, timeout=PROGRESS_TIMEOUT)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
        if pending:
            raise BenchError(f"{len(pending)} runs did not end within {PROGRESS_TIMEOUT:.0f} s")

    async def _loop(self, index: int) -> None:
        count = 0
        while not self._stopping:
            request = start_request(self._name, f"{self._tag}-{index}-{count}")
            count += 1
            if self._follow_mode == "wait":
                request.wait_seconds = WAIT_SECONDS
            sent = time.monotonic()
            response = await self._retrying("StartRun", request)
            started = time.monotonic()
            if self._follow_mode == "wait":
                completed_at = self._ended(response)
            else:
                completed_at = await self._follow(response.run_id)
            timing = RunTiming(sent, started, time.monotonic(), completed_at)
            async with self._progress:
                self.timings.append(timing)
                self._progress.notify_all()

    @staticmethod
    def _ended(response: ws.StartRunResponse) -> datetime:
        """The end a waiting StartRun answered with; the client's clock (wait mode has no
        event to read the server's from)."""
        if response.status != run_pb2.RUN_STATUS_COMPLETED:
            status = run_pb2.RunStatus.Name(response.status)
            raise BenchError(f"run {response.run_id} answered {status}, not COMPLETED")
        return datetime.now(UTC)

    async def _follow(self, run_id: str) -> datetime:
        """Watch the run until its RUN_COMPLETED event arrives; that event's server time."""
        after_seq = 0
        while True:
            call = self._stub.WatchRun(ws.WatchRunRequest(run_id=run_id, after_seq=after_seq))
            try:
                async for message in call:
                    for event in message.events:
                        after_seq = event.seq
                        if event.type == run_pb2.EVENT_TYPE_RUN_COMPLETED:
                            return event.time.ToDatetime(tzinfo=UTC)
                        if event.type in _ENDED_OTHERWISE:
                            ended = _ENDED_OTHERWISE[event.type]
                            raise BenchError(f"run {run_id} ended {ended}, not COMPLETED")
                raise BenchError(f"the watch of run {run_id} ended before the run completed")
            except grpc.aio.AioRpcError as exc:
                self._raise_unless_survivable("WatchRun", exc)
            finally:
                # Returning before the stream's own end: free it now.
                call.cancel()
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def _retrying(self, rpc: str, request: Any) -> Any:
        while True:
            try:
                return await getattr(self._stub, rpc)(request)
            except grpc.aio.AioRpcError as exc:
                self._raise_unless_survivable(rpc, exc)
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    def _raise_unless_survivable(self, rpc: str, exc: grpc.aio.AioRpcError) -> None:
        if self._survive_unavailable and exc.code() == grpc.StatusCode.UNAVAILABLE:
            return
        raise BenchError(f"{rpc} failed: {exc.code().name}: {exc.details()}") from exc


async def measure_setting(
    stub: Any, name: str, in_flight: int, seconds: float, meter: CpuMeter, follow: str = "watch"
) -> dict[str, Any]:
    """One closed-loop setting: warm up, measure `seconds`, let the runs held finish."""
    print(f"closed loop, {in_flight} in flight ({follow}): warming up", file=sys.stderr)
    # Request ids unique to this setting: a setting repeated (--in-flight 64 --in-flight 64)
    # must start new runs, not find the previous one's (a retried start's answer).
    tag = f"{name}-closed-{in_flight}-{follow}-{uuid.uuid4().hex[:8]}"
    loop = ClosedLoop(stub, name, in_flight, tag, follow=follow)
    loop.start()
    try:
        await loop.run_for(WARMUP_SECONDS)
        # Every loop past its first run: the first ones pay for connections and caches.
        await loop.wait_for_run(f"{in_flight} in flight, warm-up", lambda _: True, in_flight - 1)
        before, begin = meter.read(), time.monotonic()
        await loop.run_for(seconds)
        end, after = time.monotonic(), meter.read()
    finally:
        await loop.stop()
    window = [t for t in loop.timings if begin <= t.ended <= end]
    if not window:
        raise BenchError(f"no run completed in {seconds} s at {in_flight} in flight")
    elapsed = end - begin
    steps = len(window) * STEPS
    figures: dict[str, Any] = {
        "in_flight": in_flight,
        "follow": follow,
        "seconds": round(elapsed, 3),
        "runs": len(window),
        "steps": steps,
        "runs_per_second": round(len(window) / elapsed, 1),
        "steps_per_second": round(steps / elapsed, 1),
        "run_latency_ms": percentiles([(t.ended - t.sent) * 1000 for t in window]),
        "cpu_ms_per_step": cpu_ms_per_step(before, after, steps),
    }
    if follow == "watch":
        # In "wait" mode StartRun's answer is the run's end: no start latency of its own.
        figures["start_latency_ms"] = percentiles([(t.started - t.sent) * 1000 for t in window])
    print(_summary(figures), file=sys.stderr)
    return figures


def _summary(figures: dict[str, Any]) -> str:
    run, cpu = figures["run_latency_ms"], figures["cpu_ms_per_step"]
    start = figures.get("start_latency_ms")
    starts = f"; StartRun p50/p99 {start['p50']}/{start['p99']} ms" if start else ""
    return (
        f"closed loop, {figures['in_flight']} in flight ({figures['follow']}): "
        f"{figures['runs']} runs in {figures['seconds']} s, {figures['runs_per_second']} "
        f"runs/s, {figures['steps_per_second']} steps/s; run p50/p95/p99 {run['p50']}/"
        f"{run['p95']}/{run['p99']} ms{starts}; CPU per step: "
        f"control plane {cpu['control_plane']} ms, workers {cpu['workers']} ms, "
        f"bench client {cpu['bench_client']} ms"
    )
