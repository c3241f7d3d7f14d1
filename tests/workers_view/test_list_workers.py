"""ListWorkers and ListQueuedStepTypes against real control planes and real worker processes.

Every control plane records its worker streams in the database and confirms them at a coarse
interval, so any control plane lists every connected worker, a worker that disconnects goes
at once, and the workers of a killed control plane stop being listed as connected after
about a lease (2 s in these tests), while staying visible as stale to whoever asks.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import worker_admin_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.databases import fresh_database
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import ControlPlane, ProcessRegistry
from tests.support.runs import register, start_run
from tests.support.workflows import QUICK_RETRY, single_step
from tests.workers_view.support import listed, queued, start_worker

STEP_TYPES = {("e2e-work", "1"), ("e2e-work-sync", "1")}


def seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


def test_a_worker_is_listed_with_its_step_types_credit_and_tasks_until_it_disconnects(
    control_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    worker = start_worker(processes, control_plane, concurrency=3)

    shown = assert_eventually(lambda: listed(control_plane).get(worker.worker_id))
    assert {(s.name, s.version) for s in shown.step_types} == STEP_TYPES
    assert shown.namespace == "default"
    assert shown.session_id and not shown.stale and not shown.draining
    assert shown.connected_since.seconds > 0 and shown.control_plane
    assert shown.in_flight == 0 and not shown.HasField("last_heartbeat")
    # The credit arrives just after the Hello: the window the worker granted.
    assert_eventually(lambda: listed(control_plane)[worker.worker_id].credit == 3)

    # Two steps that take long and heartbeat: held by the worker, counted from the tasks.
    register(control_plane.stub, single_step("held-steps", QUICK_RETRY))
    for index in range(2):
        start_run(control_plane.stub, "held-steps", {"trail": [index], "sleep_seconds": 120})
    assert_eventually(lambda: len(execution_log.started()) == 2, message="both steps began")

    def busy_with_two() -> wpb.ConnectedWorker | None:
        shown = listed(control_plane)[worker.worker_id]
        return shown if shown.in_flight == 2 and shown.HasField("last_heartbeat") else None

    busy = assert_eventually(busy_with_two, message="two tasks in flight and a heartbeat")
    assert seconds(busy.last_heartbeat) >= seconds(busy.connected_since)
    assert busy.credit == 3

    worker.kill()
    assert_eventually(
        lambda: worker.worker_id not in listed(control_plane, include_stale=True),
        message="a disconnected worker is no longer listed",
    )


def test_an_idle_worker_stays_listed_while_its_control_plane_confirms_it(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    worker = start_worker(processes, control_plane, concurrency=1)
    first = assert_eventually(lambda: listed(control_plane).get(worker.worker_id))
    # Well past the first expiry its control plane gives a row (30 s) and the one it keeps
    # (3 s with 2 s leases): only confirmations keep it listed.
    assert_eventually(
        lambda: (
            seconds(listed(control_plane)[worker.worker_id].last_seen)
            > seconds(first.last_seen) + 6
        ),
        timeout=60,
        message="the row is confirmed again and again",
    )
    again = listed(control_plane)[worker.worker_id]
    assert again.session_id == first.session_id and not again.stale
    assert again.connected_since == first.connected_since


def test_queued_step_types_no_connected_worker_can_take_are_flagged(
    control_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    worker = start_worker(processes, control_plane, concurrency=2)
    register(control_plane.stub, single_step("nobody-serves", QUICK_RETRY, "e2e-nobody"))
    # A version no connected worker declares, of a step type one does.
    wrong_version = definition_from_dict(
        {
            "name": "wrong-version",
            "version": "1",
            "nodes": [
                {
                    "id": "step",
                    "task": {
                        "step_type": "e2e-work",
                        "step_version": "7",
                        "input": "input",
                        "idempotency": "key",
                        "retry": QUICK_RETRY,
                    },
                }
            ],
        }
    )
    register(control_plane.stub, wrong_version)
    for index in range(3):
        start_run(control_plane.stub, "nobody-serves", {"trail": [index]})
    start_run(control_plane.stub, "wrong-version", {"trail": []})
    # Served: long enough that a third one waits for the worker's two slots.
    register(control_plane.stub, single_step("served", QUICK_RETRY))
    for index in range(3):
        start_run(control_plane.stub, "served", {"trail": [index], "sleep_seconds": 120})
    assert_eventually(lambda: len(execution_log.started()) == 2, message="two steps began")

    def three_queued() -> dict[tuple[str, str], wpb.QueuedStepType] | None:
        found = {(q.name, q.version): q for q in queued(control_plane)}
        return found if len(found) == 3 else None

    by_type = assert_eventually(three_queued, message="three step types with queued tasks")
    nobody = by_type[("e2e-nobody", "1")]
    assert nobody.queued == 3 and nobody.capable_workers == 0
    assert list(nobody.connected_versions) == [] and nobody.oldest_queued_since.seconds > 0
    wrong = by_type[("e2e-work", "7")]
    assert wrong.queued == 1 and wrong.capable_workers == 0
    assert list(wrong.connected_versions) == ["1"]
    served = by_type[("e2e-work", "1")]
    assert served.queued == 1 and served.capable_workers == 1

    uncovered = queued(control_plane, uncovered_only=True)
    assert [(q.name, q.version) for q in uncovered] == [("e2e-nobody", "1"), ("e2e-work", "7")]

    # Once its worker is gone, the served step type is uncovered as well.
    worker.kill()
    assert_eventually(
        lambda: (
            {(q.name, q.version) for q in queued(control_plane, uncovered_only=True)}
            == {("e2e-nobody", "1"), ("e2e-work", "7"), ("e2e-work", "1")}
        ),
        message="the served step type is flagged once no worker serves it",
    )


# -- several control planes on one database (PostgreSQL, law 9) ---------------------------


@pytest.fixture
def shared_database(tmp_path: Path) -> Iterator[str]:
    with fresh_database("postgres", tmp_path) as url:
        yield url


@pytest.mark.postgres
def test_control_planes_list_each_others_workers_and_not_a_killed_ones_for_ever(
    shared_database: str, processes: ProcessRegistry
) -> None:
    first = ControlPlane(processes, shared_database, lease_seconds=2.0)
    second = ControlPlane(processes, shared_database, lease_seconds=2.0)
    first.start()
    second.start()
    on_first = start_worker(processes, first, concurrency=4)
    on_second = start_worker(processes, second, concurrency=5)

    def both_listed(server: ControlPlane) -> dict[str, wpb.ConnectedWorker] | None:
        found = listed(server)
        return found if found.keys() >= {on_first.worker_id, on_second.worker_id} else None

    for server in (first, second):
        both = assert_eventually(
            functools.partial(both_listed, server), message="each control plane lists both"
        )
        assert both[on_first.worker_id].control_plane != both[on_second.worker_id].control_plane
    assert_eventually(lambda: listed(first)[on_second.worker_id].credit == 5)
    assert_eventually(lambda: listed(second)[on_first.worker_id].credit == 4)

    first.kill()
    # Its worker keeps trying the dead address, so nothing closes its row: it expires.
    assert_eventually(
        lambda: on_first.worker_id not in listed(second),
        timeout=60,
        message="a killed control plane's worker is no longer listed as connected",
    )
    assert on_second.worker_id in listed(second)
    stale = listed(second, include_stale=True)
    assert stale[on_first.worker_id].stale
    assert not stale[on_second.worker_id].stale
    on_first.kill()
    on_second.kill()
    assert second.stop() in (0, None)
