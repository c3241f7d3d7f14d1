"""WatchRuns delivery latency with many watchers of one runs table, as a benchmark.

    uv run python -m tests.live_runs.bench_watch_runs [--watchers 100] [--runs 20]
        [--events-per-run 5] [--cross]

On a fresh PostgreSQL database (the tests' server) it starts a control plane, opens
WATCHERS WatchRuns streams on one workflow's runs, starts RUNS runs that wait for events,
then sends their events one after the other (--gap-ms apart) and measures, for every change a
stream receives, the time from the change's commit to its arrival. A change's `updated_at`
is its transaction's clock, taken before the commit, so each figure is an upper bound of
"commit to delivery". With --cross the events go through a second control plane process, so
that every change reaches the streams through NOTIFY. Prints p50/p95/p99/max in ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
from surefoot.v1 import workflow_service_pb2 as ws

from tests.api.bench_watch import WORKFLOW, definition
from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register, start_run
from tests.support.waits import send_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=100, help="WatchRuns streams")
    parser.add_argument("--runs", type=int, default=20, help="runs changed while watched")
    parser.add_argument("--events-per-run", type=int, default=5, help="events sent to each run")
    parser.add_argument(
        "--gap-ms", type=float, default=10.0, help="pause between two commits (default 10)"
    )
    parser.add_argument(
        "--cross", action="store_true", help="commit through a second control plane"
    )
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="surefoot-bench-watch-runs-") as scratch,
        fresh_database("postgres", Path(scratch)) as url,
    ):
        registry = ProcessRegistry(Path(scratch) / "processes", process_environment())
        try:
            result = measure(
                registry,
                url,
                args.watchers,
                args.runs,
                args.events_per_run,
                args.cross,
                args.gap_ms / 1000,
            )
            print(json.dumps(result), flush=True)
        finally:
            registry.kill_all()
    return 0


def measure(
    registry: ProcessRegistry,
    url: str,
    watchers: int,
    runs: int,
    events: int,
    cross: bool,
    gap: float,
) -> dict[str, object]:
    here = ControlPlane(registry, url)
    here.start()
    there = here
    if cross:
        there = ControlPlane(registry, url)
        there.start()
    register(here.stub, definition(events))  # type: ignore[arg-type]
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)
    streams = []

    def follow() -> None:
        request = ws.WatchRunsRequest(filter=ws.RunFilter(workflow_name=WORKFLOW))
        stream = here.stub.WatchRuns(request, timeout=600)
        streams.append(stream)
        first = True
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end
            for message in stream:
                arrived = time.time()
                if first:
                    first = False
                    ready.wait()
                    continue
                with lock:
                    delays.extend(
                        arrived - change.run.updated_at.ToMicroseconds() / 1e6
                        for change in message.changes
                    )

    threads = [threading.Thread(target=follow, daemon=True) for _ in range(watchers)]
    for thread in threads:
        thread.start()
    ready.wait()  # every stream has its first message: subscribed
    keys = [uuid.uuid4().hex for _ in range(runs)]
    for key in keys:
        start_run(there.stub, WORKFLOW, {"key": key})
        time.sleep(gap)
    for _ in range(events):
        for key in keys:
            send_event(there.stub, "tick", key, {"at": time.time()})
            # Apart, so that each figure is one commit's, not a queue's behind a burst.
            time.sleep(gap)
    expected = watchers * runs * (events + 1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if len(delays) >= expected:
                break
        time.sleep(0.1)
    for stream in streams:
        stream.cancel()
    if cross:
        there.stop()
    here.stop()
    delays_ms = sorted(d * 1000 for d in delays)
    cuts = statistics.quantiles(delays_ms, n=100, method="inclusive")
    return {
        "watchers": watchers,
        "cross_control_plane": cross,
        "gap_ms": gap * 1000,
        "changes_expected": expected,
        "changes_received": len(delays_ms),
        "commit_to_delivery_ms": {
            "p50": round(cuts[49], 2),
            "p95": round(cuts[94], 2),
            "p99": round(cuts[98], 2),
            "max": round(delays_ms[-1], 2),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
