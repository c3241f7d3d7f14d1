"""deploy/'s monitoring files hold together: compose wires Prometheus, Grafana, Jaeger and the
collector to the control planes, the alert rules and the dashboard parse and use only metric
names the control plane exports (as its own Prometheus exporter names them)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.metrics.commit_instruments import CommitInstruments
from controlplane.metrics.database_gauges import GAUGES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = {
    "SurefootDeadLettersGrowing",
    "SurefootQueueWithoutCapableWorker",
    "SurefootFirstAttemptRateDropping",
    "SurefootCommitLatencyHigh",
}
METRIC_NAME = re.compile(r"\bsurefoot_[a-z_]+[a-z]\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def load(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text())


def exported_names() -> set[str]:
    """Every series name the control plane's metrics get on its /metrics: each instrument
    given one value, rendered by the same Prometheus exporter the server uses."""
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("surefoot.controlplane")
    instruments = CommitInstruments(meter)
    instruments.batch_done(3, 0.01)
    for histogram in (instruments.schedule_to_start, instruments.run_time):
        histogram.record(0.5)
    for counter in (
        instruments.attempts,
        instruments.retries,
        instruments.dead_lettered,
        instruments.runs_ended,
    ):
        counter.add(1)

    def one(options: CallbackOptions) -> list[Observation]:
        return [Observation(1)]

    for name, (unit, _) in GAUGES.items():
        meter.create_observable_gauge(f"surefoot.{name}", [one], unit=unit)
    text = generate_latest(registry).decode()
    provider.shutdown()
    return {
        sample.name
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("surefoot_")
    }


def referenced_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label names in `by (...)`, `on (...)`
    and matchers are not metric names)."""
    expr = re.sub(r"\b(?:by|on|without|ignoring)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\b\w+\s*(?:=~|!~|!=|=)\s*\"[^\"]*\"", " ", expr)
    return set(METRIC_NAME.findall(expr))


def family(name: str) -> str:
    """A histogram series' metric: surefoot_x_seconds_bucket -> surefoot_x_seconds."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_compose_wires_prometheus_grafana_jaeger_and_the_collector() -> None:
    compose = load("compose.yaml")
    services = compose["services"]
    assert {"prometheus", "grafana", "jaeger", "otel-collector"} <= set(services)
    planes = [name for name in services if name.startswith("controlplane-")]
    assert len(planes) == 2
    scrape = load("prometheus/prometheus.yaml")
    targets = {
        target
        for job in scrape["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    for name in planes:
        command = services[name]["command"]
        listen = command[command.index("--metrics-listen") + 1]
        assert f"{name}:{listen.rpartition(':')[2]}" in targets
        # Scraped, so not also pushed over OTLP (every series would count twice).
        assert services[name]["environment"]["OTEL_METRICS_EXPORTER"] == "none"
    # Every file a service mounts from deploy/ is there.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source
    mounts = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert set(scrape["rule_files"]) <= mounts


def test_the_collector_sends_traces_to_jaeger_and_serves_metrics_to_prometheus() -> None:
    collector = load("otel-collector.yaml")
    for pipeline in collector["service"]["pipelines"].values():
        assert set(pipeline["receivers"]) <= set(collector["receivers"])
        assert set(pipeline["exporters"]) <= set(collector["exporters"])
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert collector["exporters"]["otlp/jaeger"]["endpoint"].startswith("jaeger:")
    port = collector["exporters"]["prometheus"]["endpoint"].rpartition(":")[2]
    targets = str(load("prometheus/prometheus.yaml")["scrape_configs"])
    assert f"otel-collector:{port}" in targets


def test_alert_rules_cover_the_four_conditions_and_use_exported_metrics() -> None:
    rules = [rule for group in load("prometheus/alerts.yaml")["groups"] for rule in group["rules"]]
    alerts = {rule["alert"]: rule for rule in rules if "alert" in rule}
    assert set(alerts) == ALERTS
    recorded = {rule["record"] for rule in rules if "record" in rule}
    for rule in alerts.values():
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert rule["for"] and rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        for used in re.findall(r"surefoot:[a-z0-9_:]+", rule["expr"]):
            assert used in recorded, used
    used = {name for rule in rules for name in referenced_names(rule["expr"])}
    assert used and used <= exported_names(), used - exported_names()


def test_the_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/surefoot.json").read_text())
    datasources = load("grafana/provisioning/datasources/surefoot.yaml")["datasources"]
    uids = {source["uid"] for source in datasources}
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    exported = exported_names()
    queried: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] in uids
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
            queried |= referenced_names(target["expr"])
    assert queried and queried <= exported, queried - exported
    # Every figure the control plane exports is on the dashboard.
    assert {family(name) for name in exported} <= {family(name) for name in queried}
    provider = load("grafana/provisioning/dashboards/surefoot.yaml")["providers"][0]
    grafana = load("compose.yaml")["services"]["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(DEPLOY / "prometheus/alerts.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
