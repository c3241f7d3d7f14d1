"""Fixtures of the metrics tests: a control plane serving metrics, its worker, its workflow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from surefoot.v1 import definition_pb2
from surefoot_worker.authoring import definition_from_dict

from tests.support.processes import ControlPlane, ProcessRegistry

METRIC_STEPS = Path(__file__).with_name("metric_steps.py")
METRICS_URL = re.compile(r"metrics \(Prometheus\) on (http://\S+)")
WORKFLOW = "metered-order"
# The step type of each node of WORKFLOW: what a count from history groups by.
STEP_TYPES = {"charge": "metrics-charge", "notify": "metrics-notify"}
QUICK_RETRY = {
    "max_attempts": 3,
    "initial_interval_seconds": 0.1,
    "backoff_coefficient": 1,
    "max_interval_seconds": 0.1,
    "jitter": 0,
}


class MetricsControlPlane(ControlPlane):
    """`surefoot server --metrics-listen 127.0.0.1:0`, its gauges read every 0.2 s."""

    metrics_url = ""

    def server_command(self, port: int) -> list[str]:
        return [
            *super().server_command(port),
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-interval",
            "0.2",
        ]

    def start(self, port: int = 0) -> None:
        super().start(port)
        assert self.process is not None
        self.metrics_url = self.process.wait_for_stdout(METRICS_URL).group(1)


@pytest.fixture
def metered_plane(database_url: str, processes: ProcessRegistry) -> Iterator[MetricsControlPlane]:
    """A control plane serving /metrics on a free port; SIGTERM at teardown must end it."""
    server = MetricsControlPlane(processes, database_url, lease_seconds=2.0)
    server.start()
    yield server
    exit_code = server.stop()
    assert exit_code in (0, None), f"the control plane exited with {exit_code} on SIGTERM"


def metered_order() -> definition_pb2.WorkflowDefinition:
    """charge (retried, or dead-lettered, as its input says) then notify."""

    def task(node_id: str, next_node: str | None) -> dict[str, object]:
        node: dict[str, object] = {
            "id": node_id,
            "task": {
                "step_type": STEP_TYPES[node_id],
                "step_version": "1",
                "input": "input",
                "idempotency": "key",
                "retry": QUICK_RETRY,
            },
        }
        if next_node:
            node["next"] = next_node
        return node

    return definition_from_dict(
        {
            "name": WORKFLOW,
            "version": "1",
            "nodes": [task("charge", "notify"), task("notify", None)],
        }
    )
