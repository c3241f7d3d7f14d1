"""The step types the engine reads: an immutable snapshot of plain data (law 4)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from controlplane.engine.retry import RetryPolicy
from controlplane.engine.state import StepError
from controlplane.engine.step_types import StepDeclaration, StepTypes
from tests.engine.workflow_builders import start, task_node, workflow

KEY = StepDeclaration("key", RetryPolicy(max_attempts=2))
NONE = StepDeclaration("none", RetryPolicy(max_attempts=7))


def test_a_snapshot_is_plain_frozen_data_with_nothing_to_read() -> None:
    snapshot = StepTypes.of([("charge", "2", KEY), ("charge", "1", NONE)])

    # Every value it holds is a declaration: no connection, engine or clock to call.
    values: list[Any] = [*snapshot.by_version.values(), *snapshot.newest.values()]
    assert all(isinstance(value, StepDeclaration) for value in values)
    assert {f.name for f in dataclasses.fields(snapshot)} == {"by_version", "newest"}
    # Both writes are wrong on purpose: the point is that they fail at run time too.
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.newest = snapshot.by_version  # type: ignore[misc, assignment]
    with pytest.raises(TypeError):
        snapshot.by_version[("ship", "1")] = KEY  # type: ignore[index]


def test_a_lookup_without_version_takes_the_newest_registered_not_the_greatest() -> None:
    snapshot = StepTypes.of([("charge", "2", KEY), ("charge", "1", NONE)])
    assert snapshot("charge", "") is NONE
    assert snapshot("charge", "2") is KEY
    assert snapshot("charge", "3") is None
    assert snapshot("refund", "") is None

    later = snapshot.with_newer([("charge", "2", StepDeclaration("natural", RetryPolicy()))])
    assert later("charge", "") == StepDeclaration("natural", RetryPolicy())
    assert snapshot("charge", "") is NONE  # the old snapshot is unchanged


def test_the_engine_runs_on_a_snapshot_and_pins_versions() -> None:
    snapshot = StepTypes.of([("charge-card", "2", KEY), ("charge-card", "1", NONE)])
    newest = start(workflow(task_node("charge", idempotency="")), {}, catalog=snapshot)
    pinned = start(
        workflow(task_node("charge", idempotency="", step_version="2")), {}, catalog=snapshot
    )

    assert newest.run.steps["charge"].idempotency == "none"
    assert newest.run.steps["charge"].retry["max_attempts"] == 7
    assert pinned.run.steps["charge"].idempotency == "key"


def test_step_errors_keep_their_json_form() -> None:
    built = StepError("Timeout", "no event 'paid' within 5.0 s")
    assert built.to_json() == {
        "type": "Timeout",
        "message": "no event 'paid' within 5.0 s",
        "retryable": False,
        "details": "",
    }
    reported = {
        "type": "Busy",
        "message": "later",
        "retryable": True,
        "details": "",
        "retry_after": 3.0,
    }
    assert StepError.from_json(reported).to_json() == reported
    # What a worker leaves out takes the worker defaults: retryable unless it says otherwise.
    assert StepError.from_json({"type": "Oops"}) == StepError("Oops", "", retryable=True)
