"""ListRuns over 100,000 runs on PostgreSQL: how long a page with its total takes (a benchmark).

    uv run python -m tests.live_runs.bench_list_runs [--runs 100000] [--repeat 20]

Seeds RUNS run rows (three quarters in the listed namespace, statuses and workflows mixed,
one a second back in time), starts a control plane, and times ListRuns through gRPC (page
of 100 and its total) for each filter: none, statuses, a workflow, the last two hours, a
run id prefix, and a page deep in the list. Prints the median and max in ms per filter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.store.database import open_engine
from tests.live_runs.many_runs import seed_runs
from tests.support.databases import fresh_database
from tests.support.processes import ControlPlane, ProcessRegistry, process_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="surefoot-bench-list-") as scratch,
        fresh_database("postgres", Path(scratch)) as url,
    ):
        engine = open_engine(url)
        began = time.monotonic()
        newest = seed_runs(engine, args.runs)
        seeded = time.monotonic() - began
        engine.dispose()
        registry = ProcessRegistry(Path(scratch) / "processes", process_environment())
        server = ControlPlane(registry, url)
        try:
            server.start()
            stub = server.stub
            some = stub.ListRuns(ws.ListRunsRequest(page_size=1)).runs[0].id
            deep = ""
            for _ in range(50):
                deep = stub.ListRuns(
                    ws.ListRunsRequest(page_size=100, page_token=deep)
                ).next_page_token
            since = ws.ListRunsRequest().created_after
            since.FromDatetime(newest - timedelta(hours=2))
            requests = {
                "no filter": ws.ListRunsRequest(),
                "statuses WAITING,RUNNING": ws.ListRunsRequest(
                    statuses=[run_pb2.RUN_STATUS_WAITING, run_pb2.RUN_STATUS_RUNNING]
                ),
                "workflow billing": ws.ListRunsRequest(workflow_name="billing"),
                "created in the last 2 h": ws.ListRunsRequest(created_after=since),
                "run id prefix (6)": ws.ListRunsRequest(run_id_prefix=some[:6]),
                "page 51 (token)": ws.ListRunsRequest(page_token=deep),
            }
            figures = {}
            for name, request in requests.items():
                request.page_size = 100
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    response = stub.ListRuns(request, timeout=30)
                    times.append((time.perf_counter() - start) * 1000)
                figures[name] = {
                    "total": response.total,
                    "median_ms": round(statistics.median(times), 1),
                    "max_ms": round(max(times), 1),
                }
            print(json.dumps({"runs": args.runs, "seed_seconds": round(seeded, 1), **figures}))
            server.stop()
        finally:
            registry.kill_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
