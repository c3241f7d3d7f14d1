"""The TypeScript SDK keeps the worker protocol's promises on a real control plane: a
Cancel frees the task's slot at once, even when the handler ignores its signal; a result
finished while the control plane was away is resent on the next stream and recorded once."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest
from surefoot.v1 import workflow_service_pb2 as ws
from surefoot_worker.authoring import definition_from_dict

from tests.node_worker.test_node_worker import NODE_STEPS, require_node_sdk
from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import (
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    WorkerProcess,
)
from tests.support.runs import history, payload_value, register, start_run, wait_for_status
from tests.support.workflows import task_node

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]


def one_node_step(name: str) -> object:
    return definition_from_dict(
        {"name": name, "version": "1", "nodes": [task_node("n", None, "input", "node-work")]}
    )


def start_node_worker(processes: ProcessRegistry, address: str, concurrency: int) -> WorkerProcess:
    processes.env["SUREFOOT_NODE_CONCURRENCY"] = str(concurrency)
    process = processes.start("node-worker", [require_node_sdk(), str(NODE_STEPS), address])
    found = process.wait_for_stdout(WORKER_CONNECTED)
    return WorkerProcess(process, found.group(1))


def test_a_cancelled_task_frees_its_slot_even_if_the_handler_ignores_it(
    control_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, one_node_step("node-cancel"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, control_plane.address, concurrency=1)
    # The handler sleeps a minute and never looks at ctx.signal.
    stuck = start_run(stub, "node-cancel", {"sleep_seconds": 60, "ignore_cancel": True})
    assert_eventually(lambda: execution_log.started(stuck, "n"), message="the step began")

    stub.CancelRun(ws.CancelRunRequest(run_id=stuck, reason="changed my mind"), timeout=10)
    wait_for_status(stub, stuck, "CANCELLED")
    # With a window of 1, the next task reaches this worker only if the slot is free again.
    after = start_run(stub, "node-cancel", {"trail": []})
    run = wait_for_status(stub, after, "COMPLETED", timeout=30)

    assert payload_value(run.output)["trail"] == ["n"]
    assert [e.pid for e in execution_log.started(after)] == [worker.pid]
    assert not any(e.phase == "returned" for e in execution_log.entries() if e.run_id == stuck)


@pytest.fixture
def long_lease_plane(database_url: str, processes: ProcessRegistry) -> Iterator[ControlPlane]:
    """Leases of 30 s: a restart of the control plane does not cost the attempt its lease."""
    plane = ControlPlane(processes, database_url, lease_seconds=30.0)
    plane.start()
    yield plane
    plane.stop()


def test_a_result_finished_while_disconnected_is_resent_and_recorded_once(
    long_lease_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    plane = long_lease_plane
    register(plane.stub, one_node_step("node-resend"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, plane.address, concurrency=2)
    run_id = start_run(plane.stub, "node-resend", {"trail": [], "sleep_seconds": 2})
    assert_eventually(lambda: execution_log.started(run_id, "n"), message="the step began")

    plane.kill()
    # The step returns while no control plane is there: its Complete waits in the worker.
    assert_eventually(
        lambda: [
            e for e in execution_log.entries() if e.run_id == run_id and e.phase == "returned"
        ],
        message="the step returned while the control plane was down",
    )
    plane.restart()
    run = wait_for_status(plane.stub, run_id, "COMPLETED")

    assert payload_value(run.output) == {"trail": ["n"], "attempt": 1, "sdk": "node"}
    assert [(e.attempt, e.pid) for e in execution_log.started(run_id)] == [(1, worker.pid)]
    attempts = [(e.type, e.attempt) for e in history(plane.stub, run_id) if e.node_id == "n"]
    assert ("ATTEMPT_COMPLETED", 1) in attempts
    assert not any(kind in ("ATTEMPT_LOST", "RETRY_SCHEDULED") for kind, _ in attempts)


def test_a_worker_told_to_stop_finishes_its_step_before_it_exits(
    control_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    stub = control_plane.stub
    register(stub, one_node_step("node-shutdown"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, control_plane.address, concurrency=2)
    run_id = start_run(stub, "node-shutdown", {"trail": [], "sleep_seconds": 2})
    assert_eventually(lambda: execution_log.started(run_id, "n"), message="the step began")

    # SIGTERM: Draining, the running step finishes, its result is acknowledged, then exit.
    exit_code = worker.process.stop(signal.SIGTERM)

    assert exit_code == 0
    run = wait_for_status(stub, run_id, "COMPLETED")
    assert payload_value(run.output) == {"trail": ["n"], "attempt": 1, "sdk": "node"}
    assert [(e.attempt, e.pid) for e in execution_log.started(run_id)] == [(1, worker.pid)]


def test_a_drained_worker_finishes_its_step_and_comes_back_to_the_restarted_control_plane(
    long_lease_plane: ControlPlane, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    plane = long_lease_plane
    register(plane.stub, one_node_step("node-drain"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, plane.address, concurrency=2)
    run_id = start_run(plane.stub, "node-drain", {"trail": [], "sleep_seconds": 2})
    assert_eventually(lambda: execution_log.started(run_id, "n"), message="the step began")

    # The control plane stops: Drain to the worker, which finishes the step within the grace.
    assert plane.stop() == 0
    assert_eventually(
        lambda: "control plane asked to drain" in worker.process.stdout(),
        message="the worker heard the Drain",
    )
    plane.start(plane.port)
    run = wait_for_status(plane.stub, run_id, "COMPLETED")
    later = start_run(plane.stub, "node-drain", {"trail": []})
    wait_for_status(plane.stub, later, "COMPLETED")

    assert payload_value(run.output)["attempt"] == 1
    assert [(e.attempt, e.pid) for e in execution_log.started(run_id)] == [(1, worker.pid)]
    assert [e.pid for e in execution_log.started(later)] == [worker.pid]


def test_a_worker_given_two_control_planes_fails_over_with_its_step(
    database_url: str, processes: ProcessRegistry, execution_log: ExecutionLog
) -> None:
    first = ControlPlane(processes, database_url, lease_seconds=30.0)
    second = ControlPlane(processes, database_url, lease_seconds=30.0)
    first.start()
    second.start()
    register(first.stub, one_node_step("node-failover"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, f"{first.address},{second.address}", concurrency=2)
    assert f"connected to {first.address}" in worker.process.stdout()
    run_id = start_run(first.stub, "node-failover", {"trail": [], "sleep_seconds": 2})
    assert_eventually(lambda: execution_log.started(run_id, "n"), message="the step began")

    first.kill()
    # The worker goes to the other control plane of the database; its lease follows it and
    # the step's result is recorded there, without a second attempt.
    run = wait_for_status(second.stub, run_id, "COMPLETED")

    assert f"connected to {second.address}" in worker.process.stdout()
    assert payload_value(run.output)["attempt"] == 1
    assert [(e.attempt, e.pid) for e in execution_log.started(run_id)] == [(1, worker.pid)]
    second.stop()


def test_the_handler_context_carries_the_key_the_attempt_and_the_trace(
    control_plane: ControlPlane, processes: ProcessRegistry
) -> None:
    stub = control_plane.stub
    register(stub, one_node_step("node-context"))  # type: ignore[arg-type]
    worker = start_node_worker(processes, control_plane.address, concurrency=1)

    run_id = start_run(stub, "node-context", {"trail": [], "echo_context": True})
    run = wait_for_status(stub, run_id, "COMPLETED")

    context = payload_value(run.output)["context"]
    (step,) = run.steps
    assert context["task_id"] == f"{run_id}:n:1"
    assert context["run_id"] == run_id
    assert context["idempotency_key"] == step.idempotency_key != ""
    assert context["trace_id"] == run.trace_id != ""
    assert re.fullmatch(rf"00-{run.trace_id}-[0-9a-f]{{16}}-0[01]", context["traceparent"])
    assert (context["workflow_name"], context["namespace"]) == ("node-context", "default")
    assert context["step"] == "node-work@1"
    assert context["worker_id"] == worker.worker_id
