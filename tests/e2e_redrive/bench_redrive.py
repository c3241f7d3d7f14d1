"""The redrive acceptance at incident scale, as a benchmark (not a timed test).

    uv run python -m tests.e2e_redrive.bench_redrive --count 4000 --rate 200 [--kill]
    uv run python -m tests.e2e_redrive.bench_redrive --groups-only --dead-letters 100000

On a fresh PostgreSQL database (the tests' server, see tests/support/databases.py) it starts
a control plane and workers, has COUNT checkouts dead-letter on a payment provider's 503
outage, times the group listing, dry-runs and then redrives them at RATE (SIGKILLing the
control plane halfway with --kill), and prints: the group, the dry run, the measured rate
(from the items' recorded retry times), the counts, and whether each customer was charged
exactly once. It then fills dead_letters to DEAD_LETTERS rows and times the group listing
over them (through the API and as one query).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import text
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.store import dead_letter_queries as dlq
from controlplane.store.database import open_engine
from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    AMOUNT,
    REDRIVE_STEPS,
    checkout,
    customer,
    get_operation,
    items,
    measured_rate,
    start_redrive,
)
from tests.support.databases import fresh_database
from tests.support.processes import (
    ControlPlane,
    ProcessRegistry,
    process_environment,
    start_worker,
)
from tests.support.runs import register, start_run

WORKFLOW = "bench-checkout"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=4000, help="runs that dead-letter")
    parser.add_argument("--rate", type=float, default=200.0, help="redrive rate per second")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the control plane halfway")
    parser.add_argument("--dead-letters", type=int, default=100_000, help="rows for the groups")
    parser.add_argument("--groups-only", action="store_true", help="only the groups timing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch, fresh_database("postgres", Path(scratch)) as url:
        registry = ProcessRegistry(Path(scratch) / "processes", process_environment())
        server = ControlPlane(registry, url, lease_seconds=5.0)
        try:
            server.start()
            if not args.groups_only:
                _incident(server, registry, args)
            _groups_at_scale(server, url, args.dead_letters)
        finally:
            registry.kill_all()
    return 0


def _incident(server: ControlPlane, registry: ProcessRegistry, args: argparse.Namespace) -> None:
    api = OutagePaymentApi()
    try:
        for _ in range(args.workers):
            start_worker(registry, server.address, REDRIVE_STEPS)
        stub = server.stub
        register(stub, checkout(WORKFLOW))
        began = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            runs = dict(
                pool.map(
                    lambda i: (
                        start_run(
                            stub,
                            WORKFLOW,
                            {"api": api.url, "customer": customer(i), "amount": AMOUNT},
                        ),
                        customer(i),
                    ),
                    range(args.count),
                )
            )
        print(f"started {len(runs)} runs in {time.monotonic() - began:.1f}s")
        while _dead_letters(stub) < args.count:
            time.sleep(0.5)
        print(f"{args.count} dead letters after {time.monotonic() - began:.1f}s")
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            response = stub.ListDeadLetters(ws.ListDeadLettersRequest(grouped=True), timeout=30)
            timings.append((time.perf_counter() - t0) * 1000)
        # The largest group is the outage; a loaded local HTTP server may also reset a few
        # connections, which are other groups (other signatures) of the same workflow.
        group = response.groups[0]
        print(
            f"groups: {len(response.groups)} row(s); the outage: count {group.count}, "
            f"{group.error_type}: {group.error_signature!r}, first {group.oldest.ToJsonString()} "
            f"last {group.newest.ToJsonString()}; ListDeadLetters(grouped) median "
            f"{statistics.median(timings):.1f} ms"
        )
        for other in response.groups[1:]:
            print(f"  and {other.count} {other.error_type}: {other.error_signature!r}")
        selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name=WORKFLOW))
        plan = start_redrive(server, selection, dry_run=True, rate_per_second=args.rate).plan
        print(
            f"dry run: matched {plan.matched}, to redrive {plan.to_redrive}, expected "
            f"{plan.expected_duration.ToNanoseconds() / 1e9:.1f}s at {args.rate:g}/s"
        )
        api.recover()
        operation = start_redrive(server, selection, rate_per_second=args.rate).operation
        began = time.monotonic()
        killed = False
        while True:
            current = get_operation(server, operation.id)
            if args.kill and not killed and current.progress.retried >= args.count // 2:
                server.kill()
                server.restart()
                killed = True
                print(
                    f"control plane SIGKILLed and restarted at {current.progress.retried} retried"
                )
                continue
            if current.done:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        p = current.progress
        rate = measured_rate(items(server, operation.id))
        charges = api.charges()
        once = len(charges) == len(runs) and {c["customer"] for c in charges} == set(runs.values())
        print(
            f"redrive done in {elapsed:.1f}s: matched {p.matched}, retried {p.retried}, succeeded "
            f"{p.succeeded}, failed again {p.failed_again}, not retried {p.not_retried}; "
            f"measured rate {rate:.1f}/s ({(rate / args.rate - 1) * 100:+.1f}% of "
            f"{args.rate:g}/s); "
            f"each customer charged exactly once: {once} ({len(charges)} charges, "
            f"{len(api.requests())} charge requests answered 200)"
        )
    finally:
        api.close()


def _dead_letters(stub: object) -> int:
    response = stub.ListDeadLetters(  # type: ignore[attr-defined]
        ws.ListDeadLettersRequest(grouped=True), timeout=30
    )
    return sum(g.count for g in response.groups)


def _groups_at_scale(server: ControlPlane, url: str, total: int) -> None:
    """Fill dead_letters to `total` rows (20 groups), then time the group listing."""
    engine = open_engine(url, pool_size=1)
    try:
        with engine.begin() as connection:
            present = connection.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
            connection.execute(
                text(
                    "INSERT INTO dead_letters (run_id, namespace, node_id, workflow_name, "
                    "workflow_version, step_type, error_type, error_message, attempts, "
                    "compensation, dead_lettered_at, step_version, idempotency, error_signature) "
                    "SELECT 'synthetic-' || g, 'default', 'charge', 'synthetic-' || (g % 4), '1', "
                    "'bank-transfer', 'Http' || (500 + g % 5), 'HTTP 503 for ' || g, 3, false, "
                    "now() - make_interval(secs => g), '1', 'key', 'HTTP <n> for <n>' "
                    "FROM generate_series(1, :n) AS g"
                ),
                {"n": max(0, total - present)},
            )
            connection.execute(text("ANALYZE dead_letters"))
        api_ms, query_ms = [], []
        for _ in range(7):
            t0 = time.perf_counter()
            groups = server.stub.ListDeadLetters(
                ws.ListDeadLettersRequest(grouped=True), timeout=30
            ).groups
            api_ms.append((time.perf_counter() - t0) * 1000)
            with engine.connect() as connection:
                t0 = time.perf_counter()
                dlq.group_dead_letters(connection, "default", dlq.DeadLetterFilter(), 100)
                query_ms.append((time.perf_counter() - t0) * 1000)
        print(
            f"groups over {total} dead letters: {len(groups)} groups, ListDeadLetters(grouped) "
            f"median {statistics.median(api_ms):.1f} ms, max {max(api_ms):.1f} ms; the query "
            f"alone median {statistics.median(query_ms):.1f} ms"
        )
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
