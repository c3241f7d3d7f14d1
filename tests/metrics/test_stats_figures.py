"""`surefoot stats`' arithmetic on GetRun's runs: what counts as a first attempt, a retry, a
dead letter, and which time is p50 and p95."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp
from surefoot.v1 import run_pb2

from controlplane.cli.stats import step_figures

COMPLETED = run_pb2.ATTEMPT_OUTCOME_COMPLETED
FAILED = run_pb2.ATTEMPT_OUTCOME_FAILED
LOST = run_pb2.ATTEMPT_OUTCOME_LOST
CANCELLED = run_pb2.ATTEMPT_OUTCOME_CANCELLED


def attempt(
    number: int, outcome: run_pb2.AttemptOutcome.ValueType, seconds: float = 1.0
) -> run_pb2.Attempt:
    started = Timestamp(seconds=1_000)
    ended = Timestamp(seconds=1_000 + int(seconds), nanos=int(seconds % 1 * 1e9))
    return run_pb2.Attempt(number=number, outcome=outcome, started_at=started, ended_at=ended)


def step(
    step_type: str,
    *attempts: run_pb2.Attempt,
    status: run_pb2.StepStatus.ValueType = run_pb2.STEP_STATUS_COMPLETED,
) -> run_pb2.Step:
    return run_pb2.Step(step_type=step_type, attempts=list(attempts), status=status)


def test_first_attempts_retries_and_dead_letters() -> None:
    runs = [
        run_pb2.Run(steps=[step("charge", attempt(1, COMPLETED)), step("")]),
        run_pb2.Run(steps=[step("charge", attempt(1, FAILED), attempt(2, COMPLETED))]),
        run_pb2.Run(steps=[step("charge", attempt(1, LOST), attempt(2, COMPLETED))]),
        run_pb2.Run(
            steps=[step("charge", attempt(1, FAILED), status=run_pb2.STEP_STATUS_DEAD_LETTERED)]
        ),
        # Cancelled when its run stopped: no verdict on the dependency.
        run_pb2.Run(steps=[step("charge", attempt(1, CANCELLED))]),
        run_pb2.Run(steps=[step("ship", attempt(1, COMPLETED))]),
    ]
    charge, ship = step_figures(runs)
    assert charge.step_type == "charge" and ship.step_type == "ship"
    assert (charge.first_attempts, charge.first_attempt_successes) == (4, 1)
    assert charge.first_attempt_success_rate == 0.25
    assert (charge.attempts, charge.retries, charge.dead_letters) == (6, 2, 1)
    assert ship.first_attempt_success_rate == 1.0
    assert ship.document()["p50_seconds"] == 1.0


def test_p50_and_p95_are_nearest_rank() -> None:
    attempts = [step("s", attempt(1, COMPLETED, seconds)) for seconds in range(1, 21)]
    (figures,) = step_figures([run_pb2.Run(steps=attempts)])
    assert figures.percentile(0.5) == 10.0
    assert figures.percentile(0.95) == 19.0
    assert step_figures([run_pb2.Run(steps=[step("s")])])[0].first_attempt_success_rate is None
