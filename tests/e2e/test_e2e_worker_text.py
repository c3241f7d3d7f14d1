"""A worker's own text (an error message, a hand-back reason) is whatever its code produced,
NUL characters included: it is recorded as storable text, never refused. Refusing it would
end the stream, the worker would report the same result on its next stream, and the step
would never move."""

from __future__ import annotations

from surefoot.v1 import common_pb2, definition_pb2, run_pb2
from surefoot.v1 import worker_service_pb2 as wpb
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ControlPlane
from tests.support.raw_worker import RawWorkerStream, declaration
from tests.support.runs import register, start_run, wait_for_status

STEP_TYPE = "raw-text-step"


def one_raw_step() -> definition_pb2.WorkflowDefinition:
    task = {
        "step_type": STEP_TYPE,
        "input": "input",
        "idempotency": "key",
        "retry": {"max_attempts": 3, "initial_interval_seconds": 0.1},
    }
    return definition_from_dict(
        {"name": "worker-text", "version": "1", "nodes": [{"id": "only", "task": task}]}
    )


def test_a_nul_in_a_failure_is_recorded_and_the_step_goes_on(
    control_plane: ControlPlane,
) -> None:
    stub = control_plane.stub
    register(stub, one_raw_step())
    worker = RawWorkerStream(control_plane.channel, "raw-text", [declaration(STEP_TYPE)], 2)
    run_id = start_run(stub, "worker-text", {"n": 1})

    first = worker.next_task()
    failed = wpb.Fail(
        task_id=first.task_id,
        attempt=first.attempt,
        error_type="Bad\x00Type",
        message="bytes b'\x00\x01' in the reply",
        details="trace\x00back",
        retryable=True,
    )
    worker.send(wpb.WorkerMessage(fail=failed))
    assert worker.next_of("ack").ack.task_ids == [first.task_id]

    second = worker.next_task()
    assert (second.task_id, second.attempt) == (f"{run_id}:only:2", 2)
    worker.send(wpb.WorkerMessage(hand_back=wpb.HandBack(task_id=second.task_id, reason="x\x00")))
    third = worker.next_task()
    worker.complete(third.task_id, third.attempt, {"done": True})

    run = wait_for_status(stub, run_id, "COMPLETED")
    assert worker.error is None, worker.error
    attempts = run.steps[0].attempts
    assert [run_pb2.AttemptOutcome.Name(a.outcome) for a in attempts] == [
        "ATTEMPT_OUTCOME_FAILED",
        "ATTEMPT_OUTCOME_LOST",
        "ATTEMPT_OUTCOME_COMPLETED",
    ]
    assert attempts[0].error.type == "Bad\ufffdType"
    assert attempts[0].error.message == "bytes b'\ufffd\x01' in the reply"
    worker.close()


def test_an_output_the_store_cannot_keep_fails_the_attempt_instead_of_changing(
    control_plane: ControlPlane,
) -> None:
    """Not JSON, an integer beyond 64 bits (which a lenient decoder turns into a float) or
    nesting the store cannot write: the attempt fails, and nothing else is recorded as the
    step's output."""
    stub = control_plane.stub
    register(stub, one_raw_step())
    worker = RawWorkerStream(control_plane.channel, "raw-output", [declaration(STEP_TYPE)], 3)
    outputs = {
        "not json": b"{'single': 'quotes'}",
        "beyond 64 bits": b'{"total": 123456789012345678901234567890}',
        "too deep": b"[" * 300 + b"]" * 300,
    }
    for label, data in outputs.items():
        run_id = start_run(stub, "worker-text", {"case": label})
        task = worker.next_task()
        complete = wpb.Complete(
            task_id=task.task_id,
            attempt=task.attempt,
            output=common_pb2.Payload(encoding="json/plain", data=data),
        )
        worker.send(wpb.WorkerMessage(complete=complete))
        run = wait_for_status(stub, run_id, "NEEDS_ATTENTION")
        step = run.steps[0]
        assert not step.HasField("output") or not step.output.data, label
        assert step.attempts[-1].error.type == "UndecodableOutput", label
        assert "output.data" in step.attempts[-1].error.message, label
    assert worker.error is None, worker.error
    worker.close()
