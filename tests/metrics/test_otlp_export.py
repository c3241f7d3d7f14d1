"""Metrics exported over OTLP to a real receiver, over HTTP and over gRPC, as the standard
OTEL_* variables choose; no scrape endpoint is needed for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.metrics.conftest import METRIC_STEPS, WORKFLOW, MetricsControlPlane, metered_order
from tests.metrics.otlp_receiver import GrpcReceiver, HttpReceiver, MetricStore
from tests.metrics.scrape import scrape
from tests.support.databases import fresh_postgres_database, require_postgres
from tests.support.eventually import assert_eventually
from tests.support.processes import (
    ControlPlane,
    ProcessRegistry,
    process_environment,
    run_cli,
    start_worker,
)
from tests.support.runs import register, start_run, wait_for_status

SECRET = "sk-otlp-8d21c0ffee"


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest) -> Iterator[MetricStore]:
    found: HttpReceiver | GrpcReceiver = (
        HttpReceiver() if request.param == "http/protobuf" else GrpcReceiver()
    )
    try:
        yield found
    finally:
        found.close()


def exporting_to(receiver: MetricStore) -> dict[str, str]:
    """HTTP through the generic variables (traces on too), gRPC through the metrics-only ones."""
    endpoint = getattr(receiver, "endpoint", "")
    if isinstance(receiver, HttpReceiver):
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        }
    return {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }


def exporting_environment(receiver: MetricStore) -> dict[str, str]:
    """The test processes' environment, exporting to `receiver` as the OTEL_* defaults
    would, whatever the machine running the tests has set."""
    environment = process_environment(**exporting_to(receiver))
    for name in (
        "OTEL_SDK_DISABLED",
        "OTEL_METRICS_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    ):
        environment.pop(name, None)
    return environment


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """One store is enough for the exporters (the scrape tests cover both)."""
    require_postgres()
    with fresh_postgres_database() as url:
        yield url


@pytest.mark.postgres
def test_metrics_reach_an_otlp_receiver(
    receiver: MetricStore, tmp_path: Path, postgres_url: str
) -> None:
    database_url = postgres_url
    registry = ProcessRegistry(tmp_path / "processes", exporting_environment(receiver))
    try:
        plane = ControlPlane(registry, database_url, lease_seconds=2.0)
        plane.start()
        register(plane.stub, metered_order())
        start_worker(registry, plane.address, METRIC_STEPS)
        inputs = [{"secret": SECRET}, {"secret": SECRET, "fail_first": True}]
        for run_id in [start_run(plane.stub, WORKFLOW, value) for value in inputs]:
            wait_for_status(plane.stub, run_id, "COMPLETED")

        def exported() -> bool:
            charge = {"surefoot.step_type": "metrics-charge"}
            assert receiver.value("surefoot.step.attempts", **charge) == 3
            assert (
                receiver.value(
                    "surefoot.step.attempts", **charge, **{"surefoot.first_attempt": "true"}
                )
                == 2
            )
            assert receiver.value("surefoot.step.duration", **charge) == 3
            assert receiver.value("surefoot.runs.ended", **{"surefoot.status": "COMPLETED"}) == 2
            assert receiver.value("surefoot.workers.connected") == 1
            assert receiver.services() == {"surefoot-control-plane"}
            return True

        assert_eventually(exported, message="the figures reached the OTLP receiver")
        assert SECRET not in receiver.label_text()
        assert plane.stop() == 0
    finally:
        registry.kill_all()


def test_an_unknown_otlp_protocol_stops_the_server_with_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "server",
        "--database-url",
        f"sqlite:///{tmp_path / 'refused.db'}",
        "--listen",
        "127.0.0.1:0",
        "--no-auth",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1",
        OTEL_EXPORTER_OTLP_PROTOCOL="carrier-pigeon",
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "carrier-pigeon" in errors[0], result.stderr


@pytest.mark.postgres
def test_a_scrape_endpoint_and_otlp_both_get_every_figure_from_one_reader(
    tmp_path: Path, postgres_url: str
) -> None:
    """With --metrics-listen and OTLP both on, one reader serves both (each figure is
    aggregated once): the scrape and the receiver see the same counts, and the receiver's
    figures are cumulative, as the scrape's are."""
    receiver = HttpReceiver()
    registry = ProcessRegistry(tmp_path / "processes", exporting_environment(receiver))
    try:
        plane = MetricsControlPlane(registry, postgres_url, lease_seconds=2.0)
        plane.start()
        register(plane.stub, metered_order())
        start_worker(registry, plane.address, METRIC_STEPS)
        charge = {"surefoot.step_type": "metrics-charge"}
        for round_ in (1, 2):
            run_id = start_run(plane.stub, WORKFLOW, {"fail_first": round_ == 2})
            wait_for_status(plane.stub, run_id, "COMPLETED")
            attempts = 1 if round_ == 1 else 3

            def both_agree(attempts: int = attempts) -> bool:
                assert receiver.value("surefoot.step.attempts", **charge) == attempts
                scraped = scrape(plane.metrics_url)
                charged = scraped.value(
                    "surefoot_step_attempts_total", surefoot_step_type="metrics-charge"
                )
                assert charged == attempts
                return True

            assert_eventually(both_agree, message=f"round {round_}: scrape and OTLP agree")
        assert plane.stop() == 0
    finally:
        registry.kill_all()
        receiver.close()
