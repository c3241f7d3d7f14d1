"""The Node SDK on a control plane that requires credentials: a worker credential connects
and runs steps; a credential without the worker role is refused, and the worker stops saying
why instead of reconnecting forever (WorkerRejected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node_worker.test_node_sdk_contract import one_node_step
from tests.node_worker.test_node_worker import NODE_STEPS, require_node_sdk
from tests.support.approval_auth import BOB, WORKER, AuthControlPlane, write_auth_file
from tests.support.eventually import assert_eventually
from tests.support.processes import WORKER_CONNECTED, ProcessRegistry
from tests.support.runs import register, start_run, wait_for_status

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def node_worker_command(address: str) -> list[str]:
    return [require_node_sdk(), str(NODE_STEPS), address]


@pytest.fixture
def auth_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    plane = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    plane.start()
    yield plane
    plane.stop()


def test_a_worker_credential_connects_and_runs_steps(
    auth_plane: AuthControlPlane, processes: ProcessRegistry
) -> None:
    processes.env["SUREFOOT_TOKEN"] = WORKER
    register(auth_plane.stub, one_node_step("node-trusted"))  # type: ignore[arg-type]
    worker = processes.start(
        "node-worker", [require_node_sdk(), str(NODE_STEPS), auth_plane.address]
    )
    worker.wait_for_stdout(WORKER_CONNECTED)

    run_id = start_run(auth_plane.stub, "node-trusted", {"trail": []})

    wait_for_status(auth_plane.stub, run_id, "COMPLETED")


def test_a_credential_without_the_worker_role_stops_the_worker(
    auth_plane: AuthControlPlane, processes: ProcessRegistry
) -> None:
    processes.env["SUREFOOT_TOKEN"] = BOB  # operator and approver, not worker
    worker = processes.start(
        "node-worker", [require_node_sdk(), str(NODE_STEPS), auth_plane.address]
    )

    assert_eventually(lambda: not worker.running, message="the refused worker exited")
    assert worker.popen.returncode == 1
    assert "PERMISSION_DENIED" in worker.stderr()
    assert WORKER_CONNECTED.search(worker.stdout()) is None
