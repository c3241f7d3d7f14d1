"""The essay's headline figure, the first-attempt success rate, as `surefoot stats` and the
Prometheus counters report it, equals a count made from the runs' histories."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tests.metrics.conftest import (
    METRIC_STEPS,
    STEP_TYPES,
    WORKFLOW,
    MetricsControlPlane,
    metered_order,
)
from tests.metrics.scrape import scrape
from tests.support.eventually import assert_eventually
from tests.support.processes import ProcessRegistry, run_cli, start_worker
from tests.support.runs import history, register, start_run, wait_for_status

ENDS = {"ATTEMPT_COMPLETED", "ATTEMPT_FAILED", "ATTEMPT_LOST"}


def run_inputs() -> list[dict[str, Any]]:
    """Eleven runs: 6 first-time charges, 4 retried once, 1 dead-lettered."""
    return [{}] * 6 + [{"fail_first": True}] * 4 + [{"dead": True}]


def counted_from_history(
    stub: Any, run_ids: list[str]
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Per step type: first attempts ended, first attempts completed, later attempts."""
    first, completed, retries = Counter[str](), Counter[str](), Counter[str]()
    for run_id in run_ids:
        for event in history(stub, run_id):
            if event.type not in ENDS:
                continue
            step_type = STEP_TYPES[event.node_id]
            if event.attempt == 1:
                first[step_type] += 1
                completed[step_type] += event.type == "ATTEMPT_COMPLETED"
            else:
                retries[step_type] += 1
    return first, completed, retries


def test_first_attempt_rate_equals_a_count_from_history(
    metered_plane: MetricsControlPlane, processes: ProcessRegistry
) -> None:
    stub = metered_plane.stub
    register(stub, metered_order())
    start_worker(processes, metered_plane.address, METRIC_STEPS)
    run_ids = [start_run(stub, WORKFLOW, value) for value in run_inputs()]
    for run_id in run_ids[:-1]:
        wait_for_status(stub, run_id, "COMPLETED")
    wait_for_status(stub, run_ids[-1], "NEEDS_ATTENTION")
    first, completed, retries = counted_from_history(stub, run_ids)
    # The count itself is what the inputs make it: 6 of 11 charges right the first time.
    assert (first["metrics-charge"], completed["metrics-charge"]) == (11, 6)
    assert (first["metrics-notify"], completed["metrics-notify"]) == (10, 10)

    result = run_cli(
        "stats", "--address", metered_plane.address, "--workflow", WORKFLOW, "-o", "json"
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["runs"] == 11
    by_type = {entry["step_type"]: entry for entry in stats["step_types"]}
    assert set(by_type) == set(first)
    for step_type, entry in by_type.items():
        assert entry["first_attempts"] == first[step_type]
        assert entry["first_attempt_successes"] == completed[step_type]
        assert entry["first_attempt_success_rate"] == completed[step_type] / first[step_type]
        assert entry["retries"] == retries[step_type]
        assert entry["p50_seconds"] is not None and entry["p95_seconds"] >= entry["p50_seconds"]
    assert by_type["metrics-charge"]["dead_letters"] == 1

    def counters_agree() -> bool:
        found = scrape(metered_plane.metrics_url)
        for step_type in first:
            labels = {"surefoot_step_type": step_type, "surefoot_first_attempt": "true"}
            assert found.value("surefoot_step_attempts_total", **labels) == first[step_type]
            ok = found.value("surefoot_step_attempts_total", **labels, surefoot_outcome="completed")
            assert ok == completed[step_type]
        return True

    assert_eventually(counters_agree, message="the attempt counters match the history")

    table = run_cli("stats", "--address", metered_plane.address)
    assert table.returncode == 0, table.stderr
    assert "11 run(s) created since" in table.stdout
    assert "54.5% (6/11)" in table.stdout
    other = run_cli("stats", "--address", metered_plane.address, "--workflow", "nothing", "--json")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["step_types"] == []


def test_stats_refuses_a_bad_window() -> None:
    result = run_cli("stats", "--since", "yesterday-ish", "--address", "127.0.0.1:1")
    assert result.returncode == 2
    assert "--since" in result.stderr
    assert result.stdout == ""
