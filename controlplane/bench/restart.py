"""Recovery is latency too: the gap a control-plane restart leaves, as a client sees it.

RESTART_IN_FLIGHT loops keep runs going; the control plane is SIGKILLed, stays down for
DOWN_SECONDS (long enough for a reconnect backoff to grow, as it does in a real outage) and is
started again on the same address. The workers are the same processes: they must reconnect by
themselves. The gap is from the new control plane's "listening" line to the first run that
the new control plane completed (its RUN_COMPLETED committed after the kill: a run started
after the restart or one in flight across it) reaching the client through WatchRun. It
includes the bench client's own reconnect, which CLIENT_CHANNEL_OPTIONS keep under ~0.1 s.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

from controlplane.bench.closed_loop import ClosedLoop
from controlplane.bench.processes import BenchControlPlane

RESTART_IN_FLIGHT = 4
DOWN_SECONDS = 3.0


async def measure_restart(stub: Any, name: str, control_plane: BenchControlPlane) -> dict[str, Any]:
    """SIGKILL the control plane under a closed loop, restart it, time the first completion."""
    loop = ClosedLoop(stub, name, RESTART_IN_FLIGHT, f"{name}-restart", survive_unavailable=True)
    loop.start()
    try:
        # Every loop has finished a run, so runs are mid-flight when the kill comes.
        await loop.wait_for_run("restart, before the kill", lambda _: True, RESTART_IN_FLIGHT - 1)
        await asyncio.to_thread(control_plane.kill)
        # Taken once the process is reaped: any event stamped later is the new life's.
        killed_at, killed = datetime.now(UTC), time.monotonic()
        print(f"restart: control plane killed, down for {DOWN_SECONDS} s", file=sys.stderr)
        await loop.run_for(DOWN_SECONDS)
        listening = await asyncio.to_thread(control_plane.start, control_plane.port)
        first = await loop.wait_for_run(
            "restart, a run the new control plane completed",
            lambda timing: timing.completed_at > killed_at,
        )
    finally:
        await loop.stop()
    figures = {
        "restart_gap_ms": round((first.ended - listening) * 1000, 1),
        "restart_down_ms": round((listening - killed) * 1000, 1),
        "restart_in_flight": RESTART_IN_FLIGHT,
    }
    print(
        f"restart: listening again after {figures['restart_down_ms']} ms; first run completed "
        f"{figures['restart_gap_ms']} ms after that",
        file=sys.stderr,
    )
    return figures
