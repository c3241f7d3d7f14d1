"""Blocked-on with two control planes on one PostgreSQL database (law 9).

A worker streams to control plane A; runs are asked about through control plane B. B reads
the workers of every control plane from the database, so a task the worker on A can take is
queued or running there, never "no capable worker"; a task nobody declares is, naming the
versions connected to A. Once A is killed, its worker's row expires (A no longer confirms
it) and B says nobody can take either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot.v1 import worker_admin_service_pb2 as wapb
from surefoot.v1 import worker_admin_service_pb2_grpc
from surefoot_worker.authoring import definition_from_dict

from tests.e2e_blocked_on.blocked_support import blocked_on, why
from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    STEPS_MODULE,
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    WorkerProcess,
    surefoot_command,
)
from tests.support.runs import get_run, register, start_run
from tests.support.workflows import single_step, task_node

pytestmark = pytest.mark.postgres


@pytest.fixture
def planes(tmp_path: Path, processes: ProcessRegistry) -> Iterator[tuple[ControlPlane, ...]]:
    """Two control planes on one fresh PostgreSQL database, 2 s leases."""
    with fresh_database("postgres", tmp_path) as url:
        first = ControlPlane(processes, url, lease_seconds=2.0)
        second = ControlPlane(processes, url, lease_seconds=2.0)
        first.start()
        second.start()
        yield first, second
        processes.kill_all()


def one_slot_worker(processes: ProcessRegistry, plane: ControlPlane) -> WorkerProcess:
    """A worker of the test steps (e2e-work@1, e2e-work-sync@1) with one slot."""
    process = processes.start(
        "worker",
        surefoot_command(
            "worker", str(STEPS_MODULE), "--address", plane.address, "--concurrency", "1"
        ),
    )
    return WorkerProcess(process, process.wait_for_stdout(WORKER_CONNECTED).group(1))


def queued_through(plane: ControlPlane) -> dict[tuple[str, str], wapb.QueuedStepType]:
    stub = worker_admin_service_pb2_grpc.WorkerAdminServiceStub(plane.channel)
    answer = stub.ListQueuedStepTypes(wapb.ListQueuedStepTypesRequest(), timeout=30)
    return {(q.name, q.version): q for q in answer.step_types}


def test_a_worker_on_another_control_plane_counts_as_connected(
    planes: tuple[ControlPlane, ControlPlane], processes: ProcessRegistry
) -> None:
    on_a, asked = planes
    stub = asked.stub
    register(stub, single_step("busy", {"max_attempts": 3}))
    seven = task_node("step", None, "input")
    seven["task"]["step_version"] = "7"
    register(stub, definition_from_dict({"name": "wants-v7", "version": "1", "nodes": [seven]}))
    worker = one_slot_worker(processes, on_a)

    # The worker's one slot is taken by a long step; the next one waits for it.
    running = start_run(stub, "busy", {"sleep_seconds": 300})
    shown = blocked_on(stub, running, "RUNNING").blocked_on[0]
    assert shown.task.worker_id == worker.worker_id
    assert shown.task.capable_workers == 1
    waiting = start_run(stub, "busy", {"sleep_seconds": 300})
    queued = blocked_on(stub, waiting, "QUEUED").blocked_on[0]
    assert (queued.task.capable_workers, queued.task.free_slots) == (1, 0)
    assert list(queued.task.connected_versions) == ["1"]
    assert "1 capable worker(s), all busy" in queued.description
    assert why(asked, waiting) == [f"queued: {queued.description}"]

    # A version nobody declares: no capable worker, and which versions are connected.
    unserved = start_run(stub, "wants-v7", {})
    missing = blocked_on(stub, unserved, "NO_CAPABLE_WORKER").blocked_on[0]
    assert (missing.task.step_type, missing.task.step_version) == ("e2e-work", "7")
    assert list(missing.task.connected_versions) == ["1"]
    assert missing.task.capable_workers == 0
    assert "needs e2e-work@7: no connected worker can take it" in missing.description
    assert "connected: e2e-work@1" in missing.description

    by_type = assert_eventually(
        lambda: found if len(found := queued_through(asked)) == 2 else None,
        message="B lists both queued step types",
    )
    assert by_type[("e2e-work", "1")].capable_workers == 1
    assert by_type[("e2e-work", "1")].queued == 1
    assert by_type[("e2e-work", "7")].capable_workers == 0
    assert list(by_type[("e2e-work", "7")].connected_versions) == ["1"]

    # A is killed; its worker keeps calling the dead address, so only the expiry of its row
    # (A stopped confirming it) tells B it is gone. The running attempt's lease runs out
    # too: both tasks of e2e-work@1 wait, and nobody can take them.
    on_a.kill()
    for run_id in (running, waiting):
        gone = blocked_on(stub, run_id, "NO_CAPABLE_WORKER").blocked_on[0]
        assert list(gone.task.connected_versions) == []
        assert "connected: none" in gone.description
    uncovered = queued_through(asked)[("e2e-work", "1")]
    assert (uncovered.queued, uncovered.capable_workers) == (2, 0)
    assert [b.kind for b in get_run(stub, unserved).blocked_on] == [missing.kind]
