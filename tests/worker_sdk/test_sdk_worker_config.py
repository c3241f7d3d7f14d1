"""Worker construction: what it accepts and refuses before any connection is made."""

from __future__ import annotations

from typing import Any

import pytest
from surefoot_worker import StepDefinition, Worker, load_steps, step
from surefoot_worker.examples import orders


def test_accepts_functions_and_definitions_in_order() -> None:
    definitions = load_steps("surefoot_worker.examples.orders")
    worker = Worker("localhost:7233", [orders.ship_order, definitions[0]], worker_id="w-1")
    assert [s.name for s in worker.steps] == ["ship-order", "reserve-stock"]
    assert worker.worker_id == "w-1"


def test_default_worker_id_is_host_pid_random() -> None:
    a = Worker("localhost:7233", [orders.charge_card])
    b = Worker("localhost:7233", [orders.charge_card])
    assert a.worker_id.count(":") == 2
    assert a.worker_id != b.worker_id


def test_refuses_a_function_that_is_not_a_step() -> None:
    def plain(ctx: Any, input: Any) -> Any:
        return None

    with pytest.raises(TypeError, match="not a step"):
        Worker("localhost:7233", [plain])


def test_refuses_a_single_step_instead_of_a_list() -> None:
    with pytest.raises(TypeError, match="list"):
        Worker("localhost:7233", orders.charge_card)  # type: ignore[arg-type]


def test_refuses_two_steps_with_the_same_name_and_version() -> None:
    @step("charge-card", idempotency="key")
    def other_charge(ctx: Any, input: Any) -> Any:
        return None

    with pytest.raises(ValueError, match="charge-card@1"):
        Worker("localhost:7233", [orders.charge_card, other_charge])


@pytest.mark.parametrize(
    ("steps", "kwargs"),
    [([], {}), ([orders.charge_card], {"concurrency": 0})],
)
def test_refuses_nonsense(steps: list[StepDefinition], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Worker("localhost:7233", steps, **kwargs)
