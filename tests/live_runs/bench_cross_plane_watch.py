"""WatchRun's delivery latency for events another control plane commits (a benchmark).

    uv run python -m tests.live_runs.bench_cross_plane_watch [--watchers 20] [--events-per-run 5]

Two control planes on one fresh PostgreSQL database: every stream follows its run on the
first, every event is sent (and so committed) through the second, which wakes nobody in the
first process directly. The event's `time` is its transaction's clock, taken before the
commit, so each figure is an upper bound of "commit on one control plane to delivery by the
other". Prints p50/p95/p99/max in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from surefoot.v1 import workflow_service_pb2 as ws

from tests.api.bench_watch import WORKFLOW, definition
from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register, start_run
from tests.support.waits import send_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=20, help="runs, each with a stream")
    parser.add_argument("--events-per-run", type=int, default=5, help="events sent to each run")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="surefoot-bench-cross-") as scratch,
        fresh_database("postgres", Path(scratch)) as url,
    ):
        registry = ProcessRegistry(Path(scratch) / "processes", process_environment())
        try:
            print(json.dumps(measure(registry, url, args.watchers, args.events_per_run)))
        finally:
            registry.kill_all()
    return 0


def measure(registry: ProcessRegistry, url: str, watchers: int, events: int) -> dict[str, object]:
    here, there = ControlPlane(registry, url), ControlPlane(registry, url)
    here.start()
    there.start()
    register(here.stub, definition(events))  # type: ignore[arg-type]
    keys = [uuid.uuid4().hex for _ in range(watchers)]
    runs = [start_run(here.stub, WORKFLOW, {"key": key}) for key in keys]
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)

    def follow(run_id: str) -> None:
        stream = here.stub.WatchRun(ws.WatchRunRequest(run_id=run_id), timeout=300)
        first = True
        for message in stream:
            arrived = time.time()
            if first:
                first = False
                ready.wait()
                continue
            with lock:
                delays.extend(arrived - e.time.ToMicroseconds() / 1e6 for e in message.events)

    threads = [threading.Thread(target=follow, args=(run_id,), daemon=True) for run_id in runs]
    for thread in threads:
        thread.start()
    ready.wait()
    for _ in range(events):
        for key in keys:
            send_event(there.stub, "tick", key, {"at": time.time()})
            # Apart, so that each figure is one event's, not a queue's behind a burst.
            time.sleep(0.01)
    for thread in threads:
        thread.join(300)
    here.stop()
    there.stop()
    delays_ms = sorted(d * 1000 for d in delays)
    cuts = statistics.quantiles(delays_ms, n=100, method="inclusive")
    return {
        "watchers": watchers,
        "events_received": len(delays_ms),
        "commit_to_delivery_ms": {
            "p50": round(cuts[49], 2),
            "p95": round(cuts[94], 2),
            "p99": round(cuts[98], 2),
            "max": round(delays_ms[-1], 2),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
