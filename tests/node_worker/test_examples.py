"""The generated-client examples run: workers/node/examples/run_and_approve.ts (ts-proto +
grpc-js) and examples/run_and_approve.py (grpcio *_pb2) each register the example workflow,
start a run, follow it with WatchRun to its end and approve it, while the example Node worker
(workers/node/examples/worker.ts) runs its charge-card step."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot.v1 import approval_pb2

from tests.node_worker.test_node_worker import require_node_sdk
from tests.support.approval_auth import ALICE, OPERATOR, AuthControlPlane, write_auth_file
from tests.support.processes import (
    REPO_ROOT,
    WORKER_CONNECTED,
    ProcessRegistry,
    process_environment,
)
from tests.support.runs import get_run, history, payload_value, status_name

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

NODE_EXAMPLES = REPO_ROOT / "workers" / "node" / "dist" / "examples"
COMPLETED = re.compile(r"^run (\S+) RUN_STATUS_COMPLETED output (.*)$", re.MULTILINE)


@pytest.fixture
def auth_plane(
    database_url: str, processes: ProcessRegistry, tmp_path: Path
) -> Iterator[AuthControlPlane]:
    """A control plane that knows bearer tokens: deciding an approval needs a person's."""
    plane = AuthControlPlane(processes, database_url, write_auth_file(tmp_path / "auth.yaml"))
    plane.start()
    yield plane
    plane.stop()


def run_example(args: list[str]) -> tuple[str, str]:
    """Runs an example client to its end (the operator starts, alice approves); its run id
    and output line."""
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=process_environment(SUREFOOT_TOKEN=OPERATOR, SUREFOOT_APPROVER_TOKEN=ALICE),
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = COMPLETED.search(result.stdout)
    assert found is not None, result.stdout
    return found.group(1), found.group(2)


@pytest.mark.parametrize("client", ["node", "python"])
def test_example_client_starts_follows_and_approves_a_run(
    auth_plane: AuthControlPlane, processes: ProcessRegistry, client: str
) -> None:
    node = require_node_sdk()
    worker = processes.start(
        "node-example-worker", [node, str(NODE_EXAMPLES / "worker.js"), auth_plane.address]
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    command = (
        [node, str(NODE_EXAMPLES / "run_and_approve.js")]
        if client == "node"
        else [sys.executable, str(Path(REPO_ROOT, "examples", "run_and_approve.py"))]
    )

    run_id, output = run_example([*command, auth_plane.address])

    stub = auth_plane.stub
    run = get_run(stub, run_id)
    assert status_name(run.status) == "COMPLETED"
    assert payload_value(run.output) == {"chargeId": "ch_1"}
    assert '{"chargeId":"ch_1"}' in output.replace(" ", "")
    types = [e.type for e in history(stub, run_id)]
    assert (
        types.index("APPROVAL_REQUESTED")
        < types.index("APPROVAL_DECIDED")
        < types.index("STEP_SCHEDULED")
    )
    approval = stub.GetApproval(
        approval_pb2.GetApprovalRequest(approval_id=f"{run_id}:manager"), timeout=10
    ).approval
    assert approval.status == approval_pb2.APPROVAL_STATUS_APPROVED
    assert approval.comment == f"approved by the {client.capitalize()} example"
    assert approval.decided_by == "alice"
