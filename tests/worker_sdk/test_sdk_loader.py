"""load_steps: finding the steps of a module by name or path."""

from __future__ import annotations

from pathlib import Path

import pytest
from surefoot_worker import StepDefinition, load_steps


def test_example_module_declares_the_three_order_steps() -> None:
    steps = load_steps("surefoot_worker.examples.orders")
    assert [(s.name, s.version, s.idempotency) for s in steps] == [
        ("reserve-stock", "1", "natural"),
        ("charge-card", "1", "key"),
        ("ship-order", "1", "key"),
    ]
    assert all(isinstance(s, StepDefinition) and s.is_async for s in steps)


def test_module_without_steps_is_a_one_line_value_error() -> None:
    with pytest.raises(ValueError, match="declares no steps") as raised:
        load_steps("surefoot_worker._payload")
    assert "\n" not in str(raised.value)


def test_missing_module_raises_module_not_found() -> None:
    with pytest.raises(ModuleNotFoundError):
        load_steps("surefoot_worker_no_such_module")


def test_loads_a_file_path_and_counts_imported_steps_once(tmp_path: Path) -> None:
    module = tmp_path / "sdk_loader_path_steps.py"
    module.write_text(
        "from surefoot_worker import step\n"
        "from surefoot_worker.examples.orders import charge_card\n"
        "again = charge_card\n"
        "@step(idempotency='natural')\n"
        "def local_step(ctx, input):\n"
        "    return input\n"
    )
    steps = load_steps(str(module))
    assert [s.name for s in steps] == ["charge-card", "local-step"]


def test_missing_file_path_raises_module_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModuleNotFoundError):
        load_steps(str(tmp_path / "absent.py"))


def test_two_different_steps_with_one_name_are_refused(tmp_path: Path) -> None:
    module = tmp_path / "sdk_loader_duplicate_steps.py"
    module.write_text(
        "from surefoot_worker import step\n"
        "@step('same', idempotency='natural')\n"
        "def first(ctx, input):\n"
        "    return 1\n"
        "@step('same', idempotency='natural')\n"
        "def second(ctx, input):\n"
        "    return 2\n"
    )
    with pytest.raises(ValueError, match="same@1"):
        load_steps(str(module))
