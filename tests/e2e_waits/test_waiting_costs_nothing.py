"""Acceptance: waiting costs nothing (law 5). Ten thousand runs waiting on an approval are
rows in the database: the control plane's resident memory grows by less than 50 MB and it
holds no thread or file per waiting run, as the kernel sees the process (/proc), not as a
counter of its own says. Then all of them are approved and every one completes.

PostgreSQL only: the production store, and the one where ten thousand concurrent StartRun
calls are an ordinary load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.support.approval_auth import ALICE, AuthControlPlane, write_auth_file
from tests.support.databases import fresh_database
from tests.support.processes import ProcessRegistry
from tests.support.runs import (
    CALL_TIMEOUT,
    Stub,
    events_of,
    history,
    json_payload,
    register,
)
from tests.support.waits import (
    ProcessFigures,
    decide,
    pending_approvals,
    process_figures,
)

RUNS = 10_000
WARM_UP_RUNS = 300
# Concurrent callers: enough to keep the control plane's batches full.
CALLERS = 32
MAX_RSS_GROWTH_MIB = 50
# Threads and descriptors come and go with gRPC's and the database pool's own needs.
FEW = 4

T = TypeVar("T")


def sign_off(name: str) -> Any:
    """One approval; approving it completes the run."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                {
                    "id": "sign-off",
                    "approval": {
                        "title": "Sign off",
                        "approvers": ["group:managers"],
                        "show": {"n": "input.n"},
                    },
                }
            ],
        }
    )


@pytest.fixture
def control_plane(processes: ProcessRegistry, tmp_path: Path) -> Iterator[AuthControlPlane]:
    """A control plane on a fresh PostgreSQL database (not the folder's two-store one)."""
    with fresh_database("postgres", tmp_path) as url:
        server = AuthControlPlane(processes, url, write_auth_file(tmp_path / "auth.yaml"))
        server.start()
        yield server
        assert server.stop() in (0, None)


def concurrently(call: Callable[[T], Any], items: Iterable[T]) -> float:
    """Seconds it took CALLERS threads to call `call` on every item (errors re-raised)."""
    began = time.monotonic()
    with ThreadPoolExecutor(CALLERS) as pool:
        for _ in pool.map(call, items):
            pass
    return time.monotonic() - began


def start_runs(stub: Stub, workflow: str, count: int) -> float:
    def start(n: int) -> None:
        request = ws.StartRunRequest(
            workflow_name=workflow, input=json_payload({"n": n}), request_id=f"{workflow}-{n}"
        )
        stub.StartRun(request, timeout=CALL_TIMEOUT)

    return concurrently(start, range(count))


def approve_all(stub: Stub, workflow: str) -> tuple[int, float]:
    # Listed first, decided after: deciding while paging would move the pages under us.
    ids = [a.id for a in pending_approvals(stub, page_size=1000, workflow_name=workflow)]
    seconds = concurrently(lambda approval_id: decide(stub, approval_id, True, token=ALICE), ids)
    return len(ids), seconds


def count_runs(stub: Stub, workflow: str, status: run_pb2.RunStatus.ValueType) -> int:
    count, token = 0, ""
    while True:
        request = ws.ListRunsRequest(
            workflow_name=workflow, statuses=[status], page_size=1000, page_token=token
        )
        response = stub.ListRuns(request, timeout=CALL_TIMEOUT)
        count += len(response.runs)
        token = response.next_page_token
        if not token:
            return count


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.postgres
def test_ten_thousand_waiting_runs_cost_no_memory_threads_or_files(
    control_plane: AuthControlPlane,
) -> None:
    stub = control_plane.stub
    assert control_plane.process is not None
    pid = control_plane.process.pid
    register(stub, sign_off("sign-off"))
    register(stub, sign_off("warm-up"))
    # Every code path of the measured part (start, wait, list, decide, complete) runs once
    # before the first figure, so that what grows after it grows with the waiting runs.
    start_runs(stub, "warm-up", WARM_UP_RUNS)
    assert approve_all(stub, "warm-up")[0] == WARM_UP_RUNS
    assert count_runs(stub, "warm-up", run_pb2.RUN_STATUS_COMPLETED) == WARM_UP_RUNS
    before, files_before = process_figures(pid), open_files(pid)

    started_in = start_runs(stub, "sign-off", RUNS)

    assert count_runs(stub, "sign-off", run_pb2.RUN_STATUS_WAITING) == RUNS
    waiting, files_waiting = process_figures(pid), open_files(pid)
    report(before, waiting, files_before, files_waiting, started_in)
    assert waiting.rss_mib - before.rss_mib < MAX_RSS_GROWTH_MIB
    assert waiting.threads <= before.threads + FEW
    assert files_waiting <= files_before + FEW

    approved, approved_in = approve_all(stub, "sign-off")

    print(f"approved {approved} runs in {approved_in:.1f} s")
    assert approved == RUNS
    assert count_runs(stub, "sign-off", run_pb2.RUN_STATUS_COMPLETED) == RUNS
    assert count_runs(stub, "sign-off", run_pb2.RUN_STATUS_WAITING) == 0
    assert pending_approvals(stub, workflow_name="sign-off") == []
    last = history(stub, pending_or_decided_run(stub))
    (decided,) = events_of(last, "APPROVAL_DECIDED")
    assert decided.principal == "alice" and last[-1].type == "RUN_COMPLETED"
    print(f"after approving: {describe(process_figures(pid), open_files(pid))}")


def pending_or_decided_run(stub: Stub) -> str:
    request = ws.ListRunsRequest(workflow_name="sign-off", page_size=1)
    return stub.ListRuns(request, timeout=CALL_TIMEOUT).runs[0].id


def describe(figures: ProcessFigures, files: int) -> str:
    return f"RSS {figures.rss_mib:.1f} MiB, {figures.threads} threads, {files} open files"


def report(
    before: ProcessFigures, waiting: ProcessFigures, files_before: int, files_waiting: int, s: float
) -> None:
    print(
        f"\nstarted {RUNS} runs in {s:.1f} s ({RUNS / s:.0f}/s) with {CALLERS} callers\n"
        f"before:  {describe(before, files_before)}\n"
        f"waiting: {describe(waiting, files_waiting)}\n"
        f"growth:  {waiting.rss_mib - before.rss_mib:+.1f} MiB, "
        f"{waiting.threads - before.threads:+d} threads, {files_waiting - files_before:+d} files"
    )
