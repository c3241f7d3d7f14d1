"""`surefoot-worker MODULE` (the SDK's own command): its options and their defaults."""

from __future__ import annotations

from typing import Any

import pytest
import surefoot_worker.__main__ as command


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []

    def run_worker(module: str, address: str, **options: Any) -> int:
        seen.append((module, address, options))
        return 7

    monkeypatch.setattr(command, "run_worker", run_worker)
    return seen


def test_defaults_come_from_the_environment(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", "cp.internal:7000")
    monkeypatch.setenv("SUREFOOT_NAMESPACE", "payments")
    assert command.main(["myapp.steps"]) == 7
    assert calls == [("myapp.steps", "cp.internal:7000", {"namespace": "payments"})]


def test_options_override_the_environment(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", "cp.internal:7000")
    monkeypatch.delenv("SUREFOOT_NAMESPACE", raising=False)
    argv = ["steps.py", "--address", "127.0.0.1:9", "--concurrency", "4"]
    assert command.main(argv) == 7
    assert calls == [("steps.py", "127.0.0.1:9", {"namespace": "default", "concurrency": 4})]


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_concurrency_that_is_not_a_positive_number_is_a_usage_error(
    calls: list[tuple[Any, ...]], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        command.main(["steps.py", "--concurrency", value])
    assert exited.value.code == 2
    assert "--concurrency" in capsys.readouterr().err
    assert calls == []
