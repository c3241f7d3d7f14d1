"""Open loop: start N runs as fast as the control plane accepts them, wait for all to end.

This is the throughput figure: thousands of runs in flight, batches as large as they grow.
Step latency is read back from history: from STEP_SCHEDULED to ATTEMPT_COMPLETED, i.e. from
the step being scheduled to its result being durable (under full load, so mostly queueing).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.bench.processes import BenchError
from controlplane.bench.report import percentiles
from controlplane.bench.workload import STEPS, start_request

START_CONCURRENCY = 200
LATENCY_SAMPLE_RUNS = 300
# How often the driver asks whether runs are still in flight: it waits for all of them, so
# this bounds the error of the elapsed time, not a latency.
DONE_POLL_SECONDS = 0.02


async def measure_open_loop(stub: Any, name: str, runs: int, workers: int) -> dict[str, Any]:
    """Start `runs` runs of `name` at once (200 StartRun in flight), wait until all ended."""
    gate = asyncio.Semaphore(START_CONCURRENCY)
    run_ids: list[str] = []

    async def start(index: int) -> None:
        async with gate:
            response = await stub.StartRun(start_request(name, f"{name}-open-{index}"))
            run_ids.append(response.run_id)

    began = time.perf_counter()
    await asyncio.gather(*(start(i) for i in range(runs)))
    started = time.perf_counter()
    while True:
        listing = await stub.ListDefinitions(ws.ListDefinitionsRequest(name=name))
        if listing.definitions[0].runs_in_flight == 0:
            break
        await asyncio.sleep(DONE_POLL_SECONDS)
    elapsed = time.perf_counter() - began
    latencies = await _step_latencies(stub, run_ids[:LATENCY_SAMPLE_RUNS])
    incomplete = await _count_not_completed(stub, name)
    if incomplete:
        raise BenchError(f"{incomplete} runs did not complete")
    return {
        "runs": runs,
        "steps": runs * STEPS,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "start_seconds": round(started - began, 3),
        "runs_per_second": round(runs / elapsed, 1),
        "steps_per_second": round(runs * STEPS / elapsed, 1),
        "step_latency_ms": percentiles(latencies),
        "latency_sample_steps": len(latencies),
    }


async def _step_latencies(stub: Any, run_ids: list[str]) -> list[float]:
    latencies: list[float] = []
    for run_id in run_ids:
        history = await stub.GetRunHistory(ws.GetRunHistoryRequest(run_id=run_id))
        scheduled: dict[tuple[str, int], datetime] = {}
        for event in history.events:
            key = (event.node_id, event.attempt)
            if event.type == run_pb2.EVENT_TYPE_STEP_SCHEDULED:
                scheduled[key] = event.time.ToDatetime()
            elif event.type == run_pb2.EVENT_TYPE_ATTEMPT_COMPLETED and key in scheduled:
                delta = event.time.ToDatetime() - scheduled[key]
                latencies.append(delta.total_seconds() * 1000)
    return latencies


async def _count_not_completed(stub: Any, name: str) -> int:
    statuses = [s for s in run_pb2.RunStatus.values() if s not in (0, run_pb2.RUN_STATUS_COMPLETED)]
    response = await stub.ListRuns(
        ws.ListRunsRequest(workflow_name=name, statuses=statuses, page_size=1000)
    )
    return len(response.runs)
