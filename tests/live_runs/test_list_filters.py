"""ListRuns filters by creation time and run id prefix, and counts every run its filters
match over all pages (SQLite and PostgreSQL); bad filters are refused naming the field."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.api.watch_support import GATES, GatedRun
from tests.auth.auth_support import row_counts
from tests.connectors.outcome_plane import InProcessControlPlane, control_plane_on
from tests.live_runs.live_support import Stub, gated_runs
from tests.support.runs import wait_for_status
from tests.support.waits import field_violations

WAITING = run_pb2.RUN_STATUS_WAITING


@pytest.fixture
def plane(database_url: str) -> Iterator[InProcessControlPlane]:
    with control_plane_on(database_url) as started:
        yield started


def created_at(stub: Stub, run: GatedRun) -> Timestamp:
    return stub.GetRun(ws.GetRunRequest(run_id=run.run_id)).run.created_at


def every_page(stub: Stub, **filters: Any) -> tuple[list[str], set[int]]:
    """The ids of every page, in order, and the totals the pages said."""
    listed: list[str] = []
    totals: set[int] = set()
    token = ""
    while True:
        response = stub.ListRuns(ws.ListRunsRequest(page_size=2, page_token=token, **filters))
        listed.extend(run.id for run in response.runs)
        totals.add(response.total)
        token = response.next_page_token
        if not token:
            return listed, totals


def test_the_total_counts_every_matching_run_over_all_pages(plane: InProcessControlPlane) -> None:
    stub = plane.stub
    runs = gated_runs(stub, 5)
    done = runs[0]
    done.release(stub, "first")
    done.release(stub, "second")
    wait_for_status(stub, done.run_id, "COMPLETED")

    listed, totals = every_page(stub, workflow_name=GATES)
    assert listed == [run.run_id for run in reversed(runs)] and totals == {5}
    waiting, totals = every_page(stub, workflow_name=GATES, statuses=[WAITING])
    assert waiting == [run.run_id for run in reversed(runs[1:])] and totals == {4}
    one = stub.ListRuns(ws.ListRunsRequest(workflow_name=GATES, page_size=1))
    assert len(one.runs) == 1 and one.total == 5 and one.next_page_token
    none = stub.ListRuns(ws.ListRunsRequest(workflow_name="nothing-by-this-name"))
    assert list(none.runs) == [] and none.total == 0 and not none.next_page_token


def test_a_creation_time_range_includes_its_start_and_excludes_its_end(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    runs = gated_runs(stub, 4)
    times = [created_at(stub, run) for run in runs]
    ids = [run.run_id for run in runs]

    after, total = every_page(stub, workflow_name=GATES, created_after=times[1])
    assert after == ids[:0:-1] and total == {3}
    before, total = every_page(stub, workflow_name=GATES, created_before=times[2])
    assert before == ids[1::-1] and total == {2}
    between, total = every_page(
        stub, workflow_name=GATES, created_after=times[1], created_before=times[3]
    )
    assert between == ids[2:0:-1] and total == {2}


def test_a_run_id_prefix_selects_the_runs_whose_id_starts_with_it(
    plane: InProcessControlPlane,
) -> None:
    stub = plane.stub
    runs = gated_runs(stub, 6)
    target = runs[2].run_id
    for length in (4, 9, 36):
        prefix = target[:length]
        listed, totals = every_page(stub, run_id_prefix=prefix)
        expected = [r.run_id for r in reversed(runs) if r.run_id.startswith(prefix)]
        assert listed == expected and totals == {len(expected)}
        assert target in listed


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"run_id_prefix": "abc"}, "run_id_prefix"),
        ({"run_id_prefix": "ABCD"}, "run_id_prefix"),
        ({"run_id_prefix": "ab_d"}, "run_id_prefix"),
        ({"run_id_prefix": "a" * 37}, "run_id_prefix"),
        ({"statuses": [run_pb2.RUN_STATUS_UNSPECIFIED]}, "statuses[0]"),
        ({"statuses": [WAITING, 42]}, "statuses[1]"),
        (
            {"created_after": Timestamp(seconds=2_000), "created_before": Timestamp(seconds=1_000)},
            "created_before",
        ),
        (
            {"created_after": Timestamp(seconds=1_000), "created_before": Timestamp(seconds=1_000)},
            "created_before",
        ),
        ({"created_after": Timestamp(seconds=10**12)}, "created_after"),
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
    ],
)
def test_bad_filters_are_refused_naming_the_field_and_write_nothing(
    plane: InProcessControlPlane, request_fields: dict[str, object], field: str
) -> None:
    before = row_counts(plane.database_url)
    with pytest.raises(grpc.RpcError) as refused:
        plane.stub.ListRuns(ws.ListRunsRequest(**request_fields))  # type: ignore[arg-type]

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert [name for name, _ in field_violations(refused.value)] == [field]
    assert row_counts(plane.database_url) == before
