"""`surefoot workers list --limit N --page-token T` over several connected worker processes:
pages by worker id, each worker once, the next page's hint on stderr and in -o json; a bad
token or limit refused in one line."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry, run_cli
from tests.workers_view.support import listed, start_worker

pytestmark = pytest.mark.postgres

HINT = "next page: --page-token "


@pytest.fixture
def plane(postgres_plane: ControlPlane) -> ControlPlane:
    return postgres_plane


def workers_list(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("workers", "list", *args, "--address", plane.address)


def test_workers_list_pages_by_worker_id_with_limit_and_page_token(
    plane: ControlPlane, processes: ProcessRegistry
) -> None:
    started = {start_worker(processes, plane, concurrency=1).worker_id for _ in range(3)}
    assert_eventually(
        lambda: set(listed(plane)) == started, message="the three workers are connected"
    )
    in_order = sorted(started)

    first = workers_list(plane, "--limit", "2")
    assert first.returncode == 0, first.stderr
    rows = first.stdout.splitlines()
    assert rows[0].split()[:3] == ["WORKER", "STEP", "TYPES"]
    assert [row.split()[0] for row in rows[1:]] == in_order[:2]
    assert first.stderr.startswith(HINT) and first.stderr.count("\n") == 1, first.stderr
    token = first.stderr.removeprefix(HINT).strip()

    second = workers_list(plane, "--limit", "2", "--page-token", token, "-o", "json")
    assert (second.returncode, second.stderr) == (0, "")
    document = json.loads(second.stdout)
    assert [w["worker_id"] for w in document["workers"]] == in_order[2:]
    assert document["next_page_token"] == "" and document["queued_step_types"] == []
    as_json = json.loads(workers_list(plane, "--limit", "2", "-o", "json").stdout)
    assert [w["worker_id"] for w in as_json["workers"]] == in_order[:2]
    assert as_json["next_page_token"] == token

    # Without --limit: the server's page (100), all three, no hint.
    every = workers_list(plane)
    assert (every.returncode, every.stderr) == (0, "")
    assert [row.split()[0] for row in every.stdout.splitlines()[1:]] == in_order

    refused = workers_list(plane, "--page-token", "not-a-token")
    assert (refused.returncode, refused.stdout) == (1, "")
    lines = refused.stderr.splitlines()
    assert lines[0] == "error: INVALID_ARGUMENT: page_token: is not a page token of this listing"
    assert "Traceback" not in refused.stderr
    for limit in ("0", "1001"):
        done = workers_list(plane, "--limit", limit)
        assert (done.returncode, done.stdout) == (2, ""), (limit, done.stderr)
        assert "argument --limit: must be between 1 and 1000" in done.stderr
