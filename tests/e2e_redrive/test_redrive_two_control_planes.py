"""Two control planes on one database both work through a redrive (law 9): the rate is the
operation's, not each control plane's, and no item is retried twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws

from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import (
    REDRIVE_STEPS,
    dead_letter_outage,
    items,
    measured_rate,
    start_redrive,
    wait_done,
    wait_statuses,
)
from tests.support.processes import ControlPlane, ProcessRegistry, StartWorker
from tests.support.runs import events_of, history

RATE = 20.0


@pytest.fixture
def second(control_plane: ControlPlane, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """Another control plane on the same database."""
    server = ControlPlane(processes, control_plane.database_url, lease_seconds=2.0)
    server.start()
    yield server
    assert server.stop() in (0, None)


def test_two_control_planes_keep_one_rate_and_retry_each_dead_letter_once(
    control_plane: ControlPlane,
    second: ControlPlane,
    worker: StartWorker,
    payment_api: OutagePaymentApi,
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    worker(REDRIVE_STEPS, address=second.address)
    count = 60
    runs = dead_letter_outage(stub, payment_api, "two-planes", count)
    payment_api.recover()

    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(workflow_name="two-planes"))
    operation = start_redrive(control_plane, selection, rate_per_second=RATE).operation
    done = wait_done(second, operation.id)

    assert (done.progress.retried, done.progress.succeeded) == (count, count)
    rate = measured_rate(items(second, operation.id))
    assert 0.8 * RATE <= rate <= 1.2 * RATE, f"measured {rate:.1f}/s at {RATE}/s"
    wait_statuses(stub, list(runs), "COMPLETED")
    assert sorted(c["customer"] for c in payment_api.charges()) == sorted(runs.values())
    for run_id in runs:
        retries = events_of(history(stub, run_id), "STEP_RETRIED")
        assert [e.data["operation_id"] for e in retries] == [operation.id], run_id
