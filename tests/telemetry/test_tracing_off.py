"""Without the OTEL_* variables nothing is set up; without opentelemetry the SDK still works."""

from __future__ import annotations

import subprocess
import sys

import pytest
from surefoot_worker import _tracing

from controlplane import telemetry

ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture
def no_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*ENDPOINTS, "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_without_an_endpoint_the_control_plane_sets_nothing_up(no_otel_env: None) -> None:
    assert not telemetry.export_configured()
    assert telemetry.setup() is False
    assert not telemetry.enabled()
    assert telemetry.grpc_server_interceptors() == []
    telemetry.emit_attempts([])  # a no-op, not an error


def test_export_is_on_for_either_endpoint_unless_the_sdk_is_disabled() -> None:
    for name in ENDPOINTS:
        assert telemetry.export_configured({name: "http://127.0.0.1:4318"})
        assert not telemetry.export_configured(
            {name: "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
        )
    assert not telemetry.export_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": " "})


def test_without_an_endpoint_or_provider_the_worker_has_no_tracer(no_otel_env: None) -> None:
    assert _tracing.tracer() is None


def test_the_worker_sdk_works_without_opentelemetry_installed() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "import os\n"
        "os.environ['OTEL_EXPORTER_OTLP_ENDPOINT'] = 'http://127.0.0.1:9'\n"
        "from surefoot_worker import Worker, step\n"
        "@step('s', idempotency='natural')\n"
        "def s(ctx, input):\n"
        "    return input\n"
        "worker = Worker('127.0.0.1:9', [s])\n"
        "assert worker._tracer is None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_protocol_is_http_unless_grpc_is_named_traces_first() -> None:
    assert telemetry.protocol({}) == "http/protobuf"
    assert telemetry.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) == "grpc"
    assert telemetry.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": " GRPC "}) == "grpc"
    both = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    assert telemetry.protocol(both) == "http/protobuf"
    # http/json is not supported by the exporters Surefoot ships: the default, with a warning.
    assert telemetry.protocol({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}) == "http/protobuf"
