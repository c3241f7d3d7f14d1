"""Fixtures of the tracing tests: a local OTLP collector (HTTP unless a test parametrizes
`otlp_protocol` with "grpc"), and Surefoot processes that export their spans to it through the
standard OTEL_* variables (plus the test's `otel_env`, e.g. a sampler)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.executions import ExecutionLog
from tests.support.processes import (
    EXECUTION_LOG_ENV,
    PROCESSES,
    ProcessRegistry,
    process_environment,
)
from tests.telemetry.collector import Collector, SpanStore
from tests.telemetry.grpc_collector import GrpcCollector

TRACED_STEPS_LOG = "TRACED_STEPS_LOG"


@pytest.fixture
def otlp_protocol() -> str:
    return "http/protobuf"


@pytest.fixture
def otel_env() -> dict[str, str]:
    """More OTEL_* variables of the test's processes."""
    return {}


@pytest.fixture
def collector(otlp_protocol: str) -> Iterator[SpanStore]:
    found: SpanStore = GrpcCollector() if otlp_protocol == "grpc" else Collector()
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def traced_steps_log(tmp_path: Path) -> Path:
    return tmp_path / "traced-steps.jsonl"


@pytest.fixture
def processes(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    execution_log: ExecutionLog,
    collector: SpanStore,
    traced_steps_log: Path,
    otlp_protocol: str,
    otel_env: dict[str, str],
) -> Iterator[ProcessRegistry]:
    """Every subprocess of the test, exporting spans to `collector` every 100 ms."""
    environment = process_environment(
        **{
            EXECUTION_LOG_ENV: str(execution_log.path),
            TRACED_STEPS_LOG: str(traced_steps_log),
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": otlp_protocol,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    environment.update(otel_env)
    for name in ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"):
        if name not in otel_env:
            environment.pop(name, None)
    registry = ProcessRegistry(tmp_path / "processes", environment)
    request.node.stash[PROCESSES] = registry
    try:
        yield registry
    finally:
        registry.kill_all()
