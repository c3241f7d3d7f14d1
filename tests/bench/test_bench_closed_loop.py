"""`surefoot bench --in-flight N` and `--restart` on PostgreSQL: the shape of what they report.

Shape, not timings: the figures of a loaded CI machine mean nothing, but every key is there
with its type, the percentiles are ordered, a setting's steps are three per run, the CPU
figures come from the processes, and every run the bench started has completed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controlplane.bench.restart import DOWN_SECONDS, RESTART_IN_FLIGHT
from controlplane.store.schema import runs
from tests.support.databases import fresh_database
from tests.support.processes import run_cli

pytestmark = pytest.mark.postgres

# Starting a control plane and a worker on a loaded 2-core machine takes seconds; each setting
# adds its warm-up, its window and the drain of the runs it holds.
BENCH_TIMEOUT = 240.0
SETTING_KEYS = {
    "in_flight",
    "follow",
    "seconds",
    "runs",
    "steps",
    "runs_per_second",
    "steps_per_second",
    "run_latency_ms",
    "start_latency_ms",
    "cpu_ms_per_step",
}


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database: the bench's figures are quoted for PostgreSQL."""
    with fresh_database("postgres", tmp_path) as url:
        yield url


def bench(database_url: str, *args: str) -> tuple[dict[str, Any], str]:
    result = run_cli("bench", "--database-url", database_url, *args, timeout=BENCH_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def run_statuses(database_url: str) -> dict[str, int]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(runs.c.status, sa.func.count()).group_by("status"))
            return {status: count for status, count in rows}
    finally:
        engine.dispose()


def assert_ordered(percentiles: dict[str, float]) -> None:
    assert set(percentiles) == {"p50", "p95", "p99"}
    assert all(isinstance(value, float) for value in percentiles.values()), percentiles
    assert 0 < percentiles["p50"] <= percentiles["p95"] <= percentiles["p99"], percentiles


def assert_setting_shape(setting: dict[str, Any], seconds: int) -> None:
    if setting["follow"] == "wait":
        # StartRun answers at the run's end: there is no start latency of its own to show.
        assert set(setting) == SETTING_KEYS - {"start_latency_ms"}
        setting = setting | {"start_latency_ms": setting["run_latency_ms"]}
    else:
        assert setting["follow"] == "watch" and set(setting) == SETTING_KEYS
    assert isinstance(setting["runs"], int) and setting["runs"] > 0
    assert setting["steps"] == 3 * setting["runs"]
    assert setting["seconds"] >= seconds
    assert setting["runs_per_second"] > 0 and setting["steps_per_second"] > 0
    assert_ordered(setting["run_latency_ms"])
    assert_ordered(setting["start_latency_ms"])
    # A run's StartRun is part of its latency, so each of its percentiles is at most the run's.
    for cut in ("p50", "p95", "p99"):
        assert setting["start_latency_ms"][cut] <= setting["run_latency_ms"][cut]
    cpu = setting["cpu_ms_per_step"]
    assert set(cpu) == {"control_plane", "workers", "bench_client"}
    assert all(isinstance(value, float) and value >= 0 for value in cpu.values()), cpu
    # The control plane commits every step: a window of steps cannot have cost it nothing.
    assert cpu["control_plane"] > 0


def test_each_in_flight_setting_reports_throughput_latency_and_cpu(database_url: str) -> None:
    figures, stderr = bench(database_url, "--in-flight", "1", "--in-flight", "4", "--seconds", "1")

    assert [(s["in_flight"], s["follow"]) for s in figures["closed_loop"]] == [
        (1, "wait"),
        (1, "watch"),
        (4, "wait"),
        (4, "watch"),
    ]
    for setting in figures["closed_loop"]:
        assert_setting_shape(setting, seconds=1)
    assert sum(s["cpu_ms_per_step"]["workers"] for s in figures["closed_loop"]) > 0
    # Only the closed loop was asked for: no open-loop figures, no restart.
    assert "steps_per_second" not in figures and "restart_gap_ms" not in figures
    assert figures["workers"] == 1 and figures["cpu_seconds"]["control_plane"] > 0
    for n in (1, 4):
        for follow in ("wait", "watch"):
            assert f"closed loop, {n} in flight ({follow}): " in stderr
    # Each setting lets the runs it holds finish: nothing is left running in the database.
    statuses = run_statuses(database_url)
    assert set(statuses) == {"COMPLETED"}, statuses


def test_restart_reports_the_gap_after_the_open_and_closed_loops(database_url: str) -> None:
    figures, stderr = bench(
        database_url,
        *("--runs", "20", "--in-flight", "2", "--follow", "watch", "--seconds", "1", "--restart"),
    )

    # --runs with --in-flight runs both modes; the open loop's keys stay at the top level.
    assert (figures["runs"], figures["steps"]) == (20, 60)
    assert figures["steps_per_second"] > 0
    (setting,) = figures["closed_loop"]
    assert setting["in_flight"] == 2
    assert_setting_shape(setting, seconds=1)
    assert isinstance(figures["restart_gap_ms"], float) and figures["restart_gap_ms"] > 0
    assert figures["restart_down_ms"] >= DOWN_SECONDS * 1000
    assert figures["restart_in_flight"] == RESTART_IN_FLIGHT
    # The new control plane listens where the old one did: the workers reconnect by themselves.
    addresses = [
        line.split()[3] for line in stderr.splitlines() if line.startswith("control plane at")
    ]
    assert len(addresses) == 2 and addresses[0] == addresses[1], stderr
    statuses = run_statuses(database_url)
    assert set(statuses) == {"COMPLETED"}, statuses


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--in-flight", "0", "argument --in-flight: must be greater than 0"),
        ("--in-flight", "many", "argument --in-flight: 'many' is not a whole number"),
        ("--seconds", "0", "argument --seconds: must be between 1 and 3600"),
    ],
)
def test_bad_bench_options_exit_2_before_starting_anything(
    database_url: str, option: str, value: str, message: str
) -> None:
    result = run_cli("bench", "--database-url", database_url, option, value)
    assert result.returncode == 2
    assert message in result.stderr
    assert "control plane at" not in result.stderr
    assert run_statuses(database_url) == {}
