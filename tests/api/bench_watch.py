"""WatchRun's delivery latency with many watchers, as a benchmark (not a timed test).

    uv run python -m tests.api.bench_watch [--watchers 100] [--events-per-run 6]

On a fresh PostgreSQL database (the tests' server, see tests/support/databases.py) it starts a
control plane, keeps WATCHERS runs open on a wait for an event, follows each with its own
WatchRun stream, then sends each run's events one after the other and measures, for every
event a stream receives, the time from the event's commit to its arrival. The event's `time`
is its transaction's clock, taken before the commit, so each figure is an upper bound of
"commit to delivery". Prints the p50/p95/p99/max in ms and the count.
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
from surefoot_worker.authoring import definition_from_dict

from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register, start_run
from tests.support.waits import send_event

WORKFLOW = "bench-watched"


def definition(events: int) -> object:
    nodes = [
        {
            "id": f"wait{index}",
            "wait_event": {"event_name": "tick", "correlation_key": "input.key"},
            **({"next": f"wait{index + 1}"} if index + 1 < events else {}),
        }
        for index in range(events)
    ]
    return definition_from_dict({"name": WORKFLOW, "version": "1", "nodes": nodes})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=100, help="runs, each with a stream")
    parser.add_argument("--events-per-run", type=int, default=6, help="events sent to each run")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="surefoot-bench-watch-") as scratch,
        fresh_database("postgres", Path(scratch)) as url,
    ):
        registry = ProcessRegistry(Path(scratch) / "processes", process_environment())
        try:
            return _measure(registry, url, args.watchers, args.events_per_run)
        finally:
            registry.kill_all()


def _measure(registry: ProcessRegistry, url: str, watchers: int, events: int) -> int:
    server = ControlPlane(registry, url)
    server.start()
    stub = server.stub
    register(stub, definition(events))  # type: ignore[arg-type]
    keys = [uuid.uuid4().hex for _ in range(watchers)]
    runs = [start_run(stub, WORKFLOW, {"key": key}) for key in keys]
    delays: list[float] = []
    lock = threading.Lock()
    ready = threading.Barrier(watchers + 1)

    def follow(run_id: str) -> None:
        stream = stub.WatchRun(ws.WatchRunRequest(run_id=run_id), timeout=300)
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
    ready.wait()  # every stream has its first message: subscribed
    began = time.monotonic()
    for _ in range(events):
        for key in keys:
            send_event(stub, "tick", key, {"at": time.time()})
    for thread in threads:
        thread.join(300)
    elapsed = time.monotonic() - began
    delays_ms = sorted(d * 1000 for d in delays)
    cuts = statistics.quantiles(delays_ms, n=100, method="inclusive")
    result = {
        "watchers": watchers,
        "history_events_received": len(delays_ms),
        "events_sent_to_runs": watchers * events,
        "seconds": round(elapsed, 2),
        "commit_to_delivery_ms": {
            "p50": round(cuts[49], 2),
            "p95": round(cuts[94], 2),
            "p99": round(cuts[98], 2),
            "max": round(delays_ms[-1], 2),
        },
    }
    print(json.dumps(result), flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
