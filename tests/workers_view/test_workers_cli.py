"""`surefoot workers list` against a real control plane and worker process."""

from __future__ import annotations

import json

from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry, run_cli
from tests.support.runs import register, start_run
from tests.support.workflows import QUICK_RETRY, single_step
from tests.workers_view.support import start_worker


def test_workers_list_shows_the_worker_and_flags_a_queue_nobody_serves(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    worker = start_worker(processes, control_plane, concurrency=4)
    register(control_plane.stub, single_step("cli-nobody", QUICK_RETRY, "e2e-nobody"))
    start_run(control_plane.stub, "cli-nobody", {"trail": []})

    def listed_as_json() -> dict[str, list[dict[str, object]]] | None:
        result = run_cli("workers", "list", "--address", control_plane.address, "--json")
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        workers = {w["worker_id"]: w for w in document["workers"]}
        ready = worker.worker_id in workers and workers[worker.worker_id]["credit"] == 4
        return document if ready and document["queued_step_types"] else None

    document = assert_eventually(listed_as_json, message="the worker and the queue, as JSON")
    (shown,) = document["workers"]
    assert shown["in_flight"] == 0 and shown["stale"] is False
    assert {(s["name"], s["version"]) for s in shown["step_types"]} == {  # type: ignore[attr-defined]
        ("e2e-work", "1"),
        ("e2e-work-sync", "1"),
    }
    (nobody,) = document["queued_step_types"]
    assert nobody["name"] == "e2e-nobody" and nobody["capable_workers"] == 0

    result = run_cli("workers", "list", "--address", control_plane.address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["WORKER", "STEP", "TYPES"]
    row = next(line for line in lines if line.startswith(worker.worker_id))
    assert "e2e-work-sync@1" in row and "connected" in row
    flagged = lines.index("queued step types no connected worker can take:")
    assert any(line.startswith("e2e-nobody") and " 1 " in line for line in lines[flagged:])

    worker.kill()
    assert_eventually(
        lambda: (
            "no workers connected in namespace 'default'"
            in run_cli("workers", "list", "--address", control_plane.address).stdout
        ),
        message="the CLI says nobody is connected once the worker is gone",
    )
