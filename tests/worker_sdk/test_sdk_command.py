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
    for variable in ("TOKEN", "TLS_CA", "TLS_CERT", "TLS_KEY", "TLS_SERVER_NAME"):
        monkeypatch.delenv(f"SUREFOOT_{variable}", raising=False)
    return seen


# What a worker without a token or TLS is given: a plaintext channel, no credential.
PLAIN = {"token": "", "tls_ca": None, "tls_cert": None, "tls_key": None, "tls_server_name": None}


def test_defaults_come_from_the_environment(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", "cp.internal:7000")
    monkeypatch.setenv("SUREFOOT_NAMESPACE", "payments")
    assert command.main(["myapp.steps"]) == 7
    assert calls == [("myapp.steps", "cp.internal:7000", {"namespace": "payments", **PLAIN})]


def test_the_token_and_tls_files_come_from_the_environment_or_the_options(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_TOKEN", "s3cret")
    monkeypatch.setenv("SUREFOOT_TLS_CA", "/etc/surefoot/ca.pem")
    monkeypatch.setenv("SUREFOOT_TLS_SERVER_NAME", "cp.internal")
    argv = ["steps.py", "--tls-cert", "worker.pem", "--tls-key", "worker.key"]
    assert command.main(argv) == 7
    (_, _, options), *_ = calls
    assert {k: options[k] for k in PLAIN} == {
        "token": "s3cret",
        "tls_ca": "/etc/surefoot/ca.pem",
        "tls_cert": "worker.pem",
        "tls_key": "worker.key",
        "tls_server_name": "cp.internal",
    }


def test_options_override_the_environment(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUREFOOT_ADDRESS", "cp.internal:7000")
    monkeypatch.delenv("SUREFOOT_NAMESPACE", raising=False)
    argv = ["steps.py", "--address", "127.0.0.1:9", "--concurrency", "4"]
    assert command.main(argv) == 7
    assert calls == [
        ("steps.py", "127.0.0.1:9", {"namespace": "default", "concurrency": 4, **PLAIN})
    ]


@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_concurrency_that_is_not_a_positive_number_is_a_usage_error(
    calls: list[tuple[Any, ...]], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        command.main(["steps.py", "--concurrency", value])
    assert exited.value.code == 2
    assert "--concurrency" in capsys.readouterr().err
    assert calls == []
