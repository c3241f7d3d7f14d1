"""What the evaluation tests share: a definition with an ai node pointed at the test's
scripted model server, its eval set, the CLI run in this process, and row counts.

The CLI makes the model calls itself (the connector's code, in its own process), so running
it in the test's process against a real control plane and a real HTTP model server is the
whole path a CI job takes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from surefoot.v1 import evaluation_service_pb2 as es
from surefoot.v1 import evaluation_service_pb2_grpc
from surefoot.v1 import workflow_service_pb2 as ws

from controlplane.cli.main import main
from controlplane.model_server import ModelServer, Reply
from controlplane.store import schema
from controlplane.store.database import open_engine
from tests.support.processes import ControlPlane

CALL_TIMEOUT = 30.0
SCHEMA = {
    "type": "object",
    "required": ["category"],
    "additionalProperties": False,
    "properties": {"category": {"type": "string"}, "reason": {"type": "string"}},
}
EVAL_SET = {
    "threshold": 0.75,
    "cases": [
        {
            "name": "refund",
            "input": {"ticket": "I want my money back"},
            "assertions": [{"subset": {"category": "billing"}}],
        },
        {
            "name": "outage",
            "input": {"ticket": "The site is down"},
            "assertions": [
                {"exact": {"category": "technical"}},
                {"schema": {"type": "object", "required": ["category"]}},
            ],
        },
    ],
}
GOOD = [Reply.json({"category": "billing"}), Reply.json({"category": "technical"})]
# The second case's reply validates against the node's schema but is the wrong class.
WORSE = [Reply.json({"category": "billing"}), Reply.json({"category": "billing"})]


def support(
    version: str, model: str, base_url: str, require_eval: bool = False, secret: str = ""
) -> dict[str, Any]:
    """support@VERSION: one ai node `classify` calling MODEL at BASE_URL."""
    connection = {"name": "main", "base_url": base_url, "model": model}
    if secret:
        connection["api_key_secret"] = secret
    return {
        "name": "support",
        "version": version,
        "require_eval": require_eval,
        "models": [connection],
        "nodes": [
            {
                "id": "classify",
                "ai": {
                    "input": "input",
                    "model": "main",
                    "user_prompt": "Classify this ticket: {{ input.ticket }}",
                    "output_schema_json": json.dumps(SCHEMA),
                    "max_repairs": 1,
                    "timeout_seconds": 10,
                },
            }
        ],
    }


def write_definitions(
    directory: Path, definitions: Sequence[dict[str, Any]], eval_set: Any = EVAL_SET
) -> Path:
    """support.yaml with `definitions`, and support.eval.yaml beside it (unless None)."""
    path = directory / "support.yaml"
    path.write_text(yaml.safe_dump(list(definitions), sort_keys=False))
    if eval_set is not None:
        (directory / "support.eval.yaml").write_text(yaml.safe_dump(eval_set, sort_keys=False))
    return path


def cli(
    capsys: pytest.CaptureFixture[str], control_plane: ControlPlane, *args: str
) -> tuple[int, str, str]:
    code = main([*args, "--address", control_plane.address])
    out, err = capsys.readouterr()
    return code, out, err


def evaluations_stub(
    control_plane: ControlPlane,
) -> evaluation_service_pb2_grpc.EvaluationServiceStub:
    return evaluation_service_pb2_grpc.EvaluationServiceStub(control_plane.channel)


def latest_version(control_plane: ControlPlane, name: str = "support") -> str:
    request = ws.GetDefinitionRequest(name=name)
    return control_plane.stub.GetDefinition(request, timeout=CALL_TIMEOUT).info.version


def listed(control_plane: ControlPlane, name: str = "support") -> list[es.Evaluation]:
    request = es.ListEvaluationsRequest(workflow_name=name)
    stub = evaluations_stub(control_plane)
    return list(stub.ListEvaluations(request, timeout=CALL_TIMEOUT).evaluations)


def row_counts(database_url: str) -> dict[str, int]:
    """Rows of the tables an evaluation writes, and of every run's history."""
    engine = open_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return {
                table.name: int(
                    connection.execute(select(func.count()).select_from(table)).scalar_one()
                )
                for table in (
                    schema.eval_sets,
                    schema.evaluations,
                    schema.history,
                    schema.write_requests,
                )
            }
    finally:
        engine.dispose()


def script(server: ModelServer, model: str, replies: Sequence[Reply]) -> None:
    server.script(model, replies)
