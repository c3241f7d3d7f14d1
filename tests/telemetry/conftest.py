"""Fixtures of the tracing tests: a local OTLP/HTTP collector, and Surefoot processes that
export their spans to it through the standard OTEL_* variables."""

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
from tests.telemetry.collector import Collector

TRACED_STEPS_LOG = "TRACED_STEPS_LOG"


@pytest.fixture
def collector() -> Iterator[Collector]:
    found = Collector()
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
    collector: Collector,
    traced_steps_log: Path,
) -> Iterator[ProcessRegistry]:
    """Every subprocess of the test, exporting spans to `collector` every 100 ms."""
    environment = process_environment(
        **{
            EXECUTION_LOG_ENV: str(execution_log.path),
            TRACED_STEPS_LOG: str(traced_steps_log),
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
    )
    for name in ("OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"):
        environment.pop(name, None)
    registry = ProcessRegistry(tmp_path / "processes", environment)
    request.node.stash[PROCESSES] = registry
    try:
        yield registry
    finally:
        registry.kill_all()
