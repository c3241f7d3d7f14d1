"""The figures a bench reports: percentiles, and CPU per step from /proc deltas."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95 and p99 of `values` (ms), each rounded to 0.01; zeros when there are none."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    if len(values) == 1:
        return dict.fromkeys(("p50", "p95", "p99"), round(values[0], 2))
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2)}


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used so far by each side of the bench."""

    control_plane: float
    workers: float
    # This process: the loops, their gRPC client and the log readers. Shown so that a
    # saturated client is not mistaken for a slow server.
    bench_client: float


class CpuMeter:
    """Reads the CPU of the control plane, the workers and the bench client together."""

    def __init__(self, control_plane: Callable[[], float], workers: Callable[[], float]) -> None:
        self._control_plane = control_plane
        self._workers = workers

    def read(self) -> CpuReading:
        return CpuReading(self._control_plane(), self._workers(), time.process_time())


def cpu_ms_per_step(before: CpuReading, after: CpuReading, steps: int) -> dict[str, float]:
    """Milliseconds of CPU per checkpointed step between two readings, by side."""

    def per_step(used: float) -> float:
        return round(used * 1000 / steps, 3) if steps else 0.0

    return {
        "control_plane": per_step(after.control_plane - before.control_plane),
        "workers": per_step(after.workers - before.workers),
        "bench_client": per_step(after.bench_client - before.bench_client),
    }
