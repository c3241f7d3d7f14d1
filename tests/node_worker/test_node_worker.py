"""Acceptance: the TypeScript worker SDK (workers/node) on a real control plane, beside the
Python SDK. A workflow whose steps alternate between a Python and a Node worker completes;
a Node worker SIGKILLed mid-step: the step comes back to another Node worker with the same
idempotency key.

The Node worker is tests/node_worker/node_steps.js on workers/node's build (`npm run build`,
which .ci/run does after `npm ci`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from surefoot.v1 import run_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.eventually import assert_eventually
from tests.support.executions import ExecutionLog
from tests.support.processes import (
    WORKER_CONNECTED,
    ControlPlane,
    ProcessRegistry,
    StartWorker,
    WorkerProcess,
)
from tests.support.runs import (
    assert_history_well_formed,
    history,
    payload_value,
    register,
    start_run,
    wait_for_status,
)
from tests.support.workflows import shaped_by, task_node

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgres"], indirect=True),
]

NODE_STEPS = Path(__file__).with_name("node_steps.js")
NODE_SDK_BUILD = Path(__file__).resolve().parents[2] / "workers/node/dist/src/index.js"


def require_node_sdk() -> str:
    node = shutil.which("node")
    if node is None or not NODE_SDK_BUILD.exists():
        message = "node or workers/node's build is missing: run `npm ci && npm run build` there"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return node


def start_node_worker(processes: ProcessRegistry, address: str) -> WorkerProcess:
    process = processes.start("node-worker", [require_node_sdk(), str(NODE_STEPS), address])
    found = process.wait_for_stdout(WORKER_CONNECTED)
    return WorkerProcess(process, found.group(1))


def alternating(name: str) -> object:
    """a (Python) → b (Node) → c (Python) → d (Node), each step's trail the previous output."""
    return definition_from_dict(
        {
            "name": name,
            "version": "1",
            "nodes": [
                task_node("a", "b", shaped_by("input.trail", "a")),
                task_node("b", "c", shaped_by("steps.a.output.trail", "b"), "node-work"),
                task_node("c", "d", shaped_by("steps.b.output.trail", "c")),
                task_node("d", None, shaped_by("steps.c.output.trail", "d"), "node-work"),
            ],
        }
    )


def test_steps_alternate_between_a_python_and_a_node_worker(
    control_plane: ControlPlane,
    processes: ProcessRegistry,
    worker: StartWorker,
    execution_log: ExecutionLog,
) -> None:
    stub = control_plane.stub
    register(stub, alternating("py-node-py-node"))  # type: ignore[arg-type]
    python = worker()
    node = start_node_worker(processes, control_plane.address)

    run_id = start_run(stub, "py-node-py-node", {"trail": []})
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output) == {"trail": ["a", "b", "c", "d"], "attempt": 1, "sdk": "node"}
    ran_on = {e.node_id: (e.step_type, e.pid) for e in execution_log.started(run_id)}
    assert ran_on == {
        "a": ("e2e-work", python.pid),
        "b": ("node-work", node.pid),
        "c": ("e2e-work", python.pid),
        "d": ("node-work", node.pid),
    }
    # Each step's attempt names the worker that ran it.
    ran_by = {step.node_id: [a.worker_id for a in step.attempts] for step in run.steps}
    assert ran_by == {
        "a": [python.worker_id],
        "b": [node.worker_id],
        "c": [python.worker_id],
        "d": [node.worker_id],
    }
    assert_history_well_formed(history(stub, run_id))


def test_step_of_a_killed_node_worker_comes_back_to_another_with_the_same_key(
    control_plane: ControlPlane,
    processes: ProcessRegistry,
    worker: StartWorker,
    execution_log: ExecutionLog,
) -> None:
    stub = control_plane.stub
    register(stub, alternating("node-crash"))  # type: ignore[arg-type]
    worker()
    first = start_node_worker(processes, control_plane.address)
    # b's first attempt would take a minute; the attempt after the crash is quick.
    run_id = start_run(
        stub, "node-crash", {"trail": [], "b": {"sleep_seconds": 60, "sleep_attempts": 1}}
    )
    assert_eventually(
        lambda: execution_log.started(run_id, "b"), message="step b began on the first Node worker"
    )
    second = start_node_worker(processes, control_plane.address)

    first.kill()
    run = wait_for_status(stub, run_id, "COMPLETED")

    assert payload_value(run.output)["trail"] == ["a", "b", "c", "d"]
    runs_of_b = execution_log.started(run_id, "b")
    assert [(e.attempt, e.pid) for e in runs_of_b] == [(1, first.pid), (2, second.pid)]
    assert runs_of_b[0].idempotency_key == runs_of_b[1].idempotency_key != ""
    assert runs_of_b[0].input == runs_of_b[1].input
    # The first attempt was lost with its worker; the second, on the other one, completed.
    (b,) = [step for step in run.steps if step.node_id == "b"]
    assert [(a.number, a.worker_id, a.outcome) for a in b.attempts] == [
        (1, first.worker_id, run_pb2.ATTEMPT_OUTCOME_LOST),
        (2, second.worker_id, run_pb2.ATTEMPT_OUTCOME_COMPLETED),
    ]
    assert b.idempotency_key == runs_of_b[0].idempotency_key
    assert_history_well_formed(history(stub, run_id))
