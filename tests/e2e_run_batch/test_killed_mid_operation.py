"""A bulk pause survives a control plane SIGKILLed half-way (law 9: another control plane on
the same database carries on, the killed one comes back): every run is paused exactly once,
and the operation's counts, read from the database, stay exact."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from surefoot.v1 import operation_service_pb2 as opb

from tests.e2e_run_batch.batch_support import (
    PAUSE,
    by_workflow,
    get_operation,
    items,
    start_action,
    start_held_runs,
    wait_done,
)
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.runs import events_of, history

COUNT = 120
RATE = 20.0


@pytest.fixture
def second(control_plane: ControlPlane, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """Another control plane on the same database."""
    server = ControlPlane(processes, control_plane.database_url, lease_seconds=2.0)
    server.start()
    yield server
    assert server.stop() in (0, None)


def test_a_control_plane_killed_mid_pause_leaves_exact_counts_and_one_pause_per_run(
    control_plane: ControlPlane, second: ControlPlane
) -> None:
    run_ids = start_held_runs(control_plane.stub, "killed-batch", COUNT)
    operation = start_action(
        control_plane, by_workflow("killed-batch"), PAUSE, rate_per_second=RATE, comment="hold"
    ).operation

    assert_eventually(
        lambda: get_operation(second, operation.id).progress.applied >= COUNT // 4,
        message="a quarter of the runs paused",
    )
    control_plane.kill()
    # The survivor alone goes on with the operation, at its rate.
    seen = get_operation(second, operation.id).progress.applied
    assert_eventually(
        lambda: get_operation(second, operation.id).progress.applied >= seen + 10,
        message="the other control plane carries on",
    )
    control_plane.restart()

    done = wait_done(control_plane, operation.id)
    p = done.progress
    assert done.state == opb.OPERATION_STATE_COMPLETED
    assert (p.matched, p.applied, p.pending, p.not_applicable, p.cancelled) == (
        COUNT, COUNT, 0, 0, 0,
    )  # fmt: skip
    applied = items(control_plane, operation.id, opb.OPERATION_ITEM_STATE_APPLIED)
    assert sorted(i.run_id for i in applied) == sorted(run_ids)
    stub = control_plane.stub
    for run_id in run_ids:
        pauses = events_of(history(stub, run_id), "RUN_PAUSED")
        assert [e.data["operation_id"] for e in pauses] == [operation.id], run_id
