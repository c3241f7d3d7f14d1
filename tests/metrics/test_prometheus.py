"""A real Prometheus scrape (HTTP GET of /metrics) of a real control plane while runs
progress: the gauges, counters and histograms move, and nothing secret is in a label."""

from __future__ import annotations

from typing import Any

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot.v1.operation_service_pb2_grpc import OperationServiceStub
from surefoot_worker.authoring import definition_from_dict

from tests.metrics.conftest import METRIC_STEPS, WORKFLOW, MetricsControlPlane, metered_order
from tests.metrics.scrape import Scrape, scrape
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    WORKER_CONNECTED,
    ProcessRegistry,
    start_worker,
    surefoot_command,
)
from tests.support.runs import register, start_run, wait_for_status

SECRET = "sk-live-4f9c2a7e51b3"
CHARGE = {"surefoot_step_type": "metrics-charge"}
NOTIFY = {"surefoot_step_type": "metrics-notify"}


def inputs() -> list[dict[str, Any]]:
    """Three charges that succeed at once, two on their second attempt, one dead-lettered."""
    plain: dict[str, Any] = {"secret": SECRET}
    retried = plain | {"fail_first": True}
    return [plain, plain, plain, retried, retried, plain | {"dead": True}]


def test_metrics_move_as_runs_progress(
    metered_plane: MetricsControlPlane, processes: ProcessRegistry
) -> None:
    stub = metered_plane.stub
    register(stub, metered_order())
    run_ids = [start_run(stub, WORKFLOW, value) for value in inputs()]

    def queued_without_worker() -> Scrape:
        found = scrape(metered_plane.metrics_url)
        assert found.value("surefoot_queue_depth", **CHARGE) == 6, found.series(
            "surefoot_queue_depth"
        )
        # What the "queue with no capable worker" alert fires on.
        assert found.value("surefoot_queue_capable_workers", **CHARGE) == 0
        assert found.value("surefoot_runs_active", surefoot_status="RUNNING") == 6
        assert found.value("surefoot_workers_connected") == 0
        return found

    before = assert_eventually(queued_without_worker, message="6 charges queued, no worker")
    assert before.value("surefoot_step_attempts_total") == 0

    start_worker(processes, metered_plane.address, METRIC_STEPS)
    for run_id in run_ids[:5]:
        wait_for_status(stub, run_id, "COMPLETED")
    wait_for_status(stub, run_ids[5], "NEEDS_ATTENTION")

    def settled() -> Scrape:
        found = scrape(metered_plane.metrics_url)
        attempts = "surefoot_step_attempts_total"
        first = {"surefoot_first_attempt": "true"}
        assert found.value(attempts, **CHARGE, **first) == 6
        assert found.value(attempts, **CHARGE, **first, surefoot_outcome="completed") == 3
        assert found.value(attempts, **CHARGE, surefoot_first_attempt="false") == 2
        assert found.value(attempts, **NOTIFY, **first, surefoot_outcome="completed") == 5
        assert found.value("surefoot_step_retries_total", **CHARGE) == 2
        assert found.value("surefoot_step_dead_lettered_total", **CHARGE) == 1
        assert (
            found.value(
                "surefoot_dead_letters",
                surefoot_workflow=WORKFLOW,
                error_type="CardDeclined",
                **CHARGE,
            )
            == 1
        )
        assert found.value("surefoot_runs_ended_total", surefoot_status="COMPLETED") == 5
        assert found.value("surefoot_runs_active", surefoot_status="NEEDS_ATTENTION") == 1
        assert found.value("surefoot_runs_active", surefoot_status="RUNNING") == 0
        assert found.value("surefoot_queue_depth") == 0
        assert found.value("surefoot_workers_connected") == 1
        assert found.value("surefoot_workers_credit") > 0
        # 8 charge attempts (6 first, 2 retries), 5 notify attempts, each timed from its
        # lease to its outcome.
        assert found.value("surefoot_step_duration_seconds_count", **CHARGE) == 8
        assert (
            found.value("surefoot_step_duration_seconds_count", **CHARGE, surefoot_outcome="failed")
            == 3
        )
        assert found.value("surefoot_step_duration_seconds_count", **NOTIFY) == 5
        assert found.value("surefoot_step_schedule_to_start_duration_seconds_count") == 13
        assert found.value("surefoot_commit_batch_size_count") > 0
        assert found.value("surefoot_commit_duration_seconds_count") > 0
        return found

    after = assert_eventually(settled, message="the runs' figures on /metrics")
    # The error messages carried the secret; run ids are unbounded: neither is a label.
    assert SECRET not in after.text
    for run_id in run_ids:
        assert run_id not in after.text
    labels = {key for sample in after.samples for key in sample.labels}
    assert not labels & {"run_id", "surefoot_run_id", "message", "surefoot_error_message"}


def test_gauges_come_from_the_database_not_from_the_process(
    metered_plane: MetricsControlPlane,
) -> None:
    """Law 5: a control plane killed and started again (nothing of the old one in memory)
    reports the queue and the waiting runs at once, read from the database."""
    stub = metered_plane.stub
    register(stub, metered_order())
    for value in inputs()[:3]:
        start_run(stub, WORKFLOW, value)

    def three_queued() -> bool:
        found = scrape(metered_plane.metrics_url)
        assert found.value("surefoot_queue_depth", **CHARGE) == 3
        assert found.value("surefoot_runs_active", surefoot_status="RUNNING") == 3
        return True

    assert_eventually(three_queued, message="3 charges queued")
    first_url = metered_plane.metrics_url
    metered_plane.kill()
    metered_plane.restart(same_port=False)
    assert metered_plane.metrics_url != first_url
    fresh = scrape(metered_plane.metrics_url)
    # Read before the endpoint served anything: the first scrape already has the figures.
    assert fresh.value("surefoot_queue_depth", **CHARGE) == 3
    assert fresh.value("surefoot_queue_capable_workers", **CHARGE) == 0
    assert fresh.value("surefoot_runs_active", surefoot_status="RUNNING") == 3
    # The counters are this process's own: it has ended no attempt yet.
    assert fresh.value("surefoot_step_attempts_total") == 0


def test_a_busy_worker_shows_as_credit_in_flight_and_a_capable_queue(
    metered_plane: MetricsControlPlane, processes: ProcessRegistry
) -> None:
    stub = metered_plane.stub
    register(stub, metered_order())
    worker = processes.start(
        "worker",
        surefoot_command(
            "worker", str(METRIC_STEPS), "--address", metered_plane.address, "--concurrency", "2"
        ),
    )
    worker.wait_for_stdout(WORKER_CONNECTED)
    for _ in range(5):
        start_run(stub, WORKFLOW, {"hold_seconds": 30})

    def busy() -> bool:
        found = scrape(metered_plane.metrics_url)
        assert found.value("surefoot_workers_connected") == 1
        assert found.value("surefoot_workers_credit") == 2
        assert found.value("surefoot_workers_in_flight") == 2
        assert found.value("surefoot_queue_depth", **CHARGE, surefoot_step_version="1") == 3
        # Tasks wait for credit, not for a worker: this queue is no alert.
        assert found.value("surefoot_queue_capable_workers", **CHARGE) == 1
        assert found.value("surefoot_queue_age_seconds", **CHARGE) > 0
        return True

    assert_eventually(busy, message="2 charges held, 3 queued for the one capable worker")


def test_a_redrive_in_progress_shows_its_items_by_state(
    metered_plane: MetricsControlPlane, processes: ProcessRegistry
) -> None:
    stub = metered_plane.stub
    register(stub, metered_order())
    start_worker(processes, metered_plane.address, METRIC_STEPS)
    run_ids = [start_run(stub, WORKFLOW, {"dead": True}) for _ in range(3)]
    for run_id in run_ids:
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    # One retry every two seconds: the operation stays in progress for a few seconds.
    selection = opb.RedriveSelection(filter=ws.DeadLetterFilter(step_type="metrics-charge"))
    request = opb.StartRedriveRequest(selection=selection, rate_per_second=0.5)
    OperationServiceStub(metered_plane.channel).StartRedrive(request, timeout=30)
    redrive = {"surefoot_operation_kind": "redrive"}
    seen: set[str] = set()

    def in_progress() -> bool:
        found = scrape(metered_plane.metrics_url)
        assert found.value("surefoot_operation_items", **redrive) == 3
        states = {s.labels["surefoot_item_state"] for s in found.series("surefoot_operation_items")}
        seen.update(states)
        # At one retry every two seconds, some items still wait their turn.
        assert "PENDING" in states, states
        return True

    assert_eventually(in_progress, message="the redrive's 3 items on /metrics")

    def finished() -> bool:
        found = scrape(metered_plane.metrics_url)
        for sample in found.series("surefoot_operation_items"):
            seen.add(sample.labels["surefoot_item_state"])
        # The charges fail again (non-retryable): the operation settles, its series go.
        assert found.value("surefoot_operation_items", **redrive) == 0
        return True

    assert_eventually(finished, message="the redrive settled")
    # Each item was reported in a state of its own along the way, not only as pending.
    assert len(seen) > 1, seen


def test_waiting_runs_are_counted_by_what_they_wait_for(
    metered_plane: MetricsControlPlane, processes: ProcessRegistry
) -> None:
    stub = metered_plane.stub
    waits: dict[str, dict[str, Any]] = {
        "approval": {"approval": {"title": "Refund?", "approvers": ["carol"]}},
        "sleep": {"sleep": {"seconds": 600}},
        "event": {"wait_event": {"event_name": "paid", "correlation_key": "input.order"}},
    }
    for kind, node in waits.items():
        definition = {"name": f"waits-{kind}", "version": "1", "nodes": [{"id": kind, **node}]}
        register(stub, definition_from_dict(definition))
        start_run(stub, f"waits-{kind}", {"order": "A-1"})
    # A retry's backoff is a wait too: a first attempt fails, the next is ten minutes away.
    slow_retry = metered_order()
    slow_retry.name = "waits-retry"
    for task in slow_retry.nodes:
        task.task.retry.initial_interval_seconds = 600
        task.task.retry.max_interval_seconds = 600
    register(stub, slow_retry)
    start_worker(processes, metered_plane.address, METRIC_STEPS)
    start_run(stub, "waits-retry", {"fail_first": True})

    def waiting() -> bool:
        found = scrape(metered_plane.metrics_url)
        for kind in ("approval", "sleep", "event", "retry"):
            assert found.value("surefoot_waits", surefoot_wait_kind=kind) == 1, kind
        assert found.value("surefoot_runs_active", surefoot_status="WAITING") == 3
        # The retry's task is not due: no queue, nothing for the alert to fire on.
        assert found.value("surefoot_queue_depth") == 0
        return True

    assert_eventually(waiting, message="one run waiting of each kind")
