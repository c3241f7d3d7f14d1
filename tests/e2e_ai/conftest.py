"""Fixtures of the AI node's end-to-end tests: a scripted model endpoint, the real connector
worker holding the model's API key, and definitions with an ``ai`` node.

Everything is local: `controlplane/model_server.py` answers as an OpenAI-compatible endpoint
from each test's script, so nothing calls the internet.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.model_server import ModelServer
from tests.support.processes import (
    WORKER_CONNECTED,
    ControlPlane,
    ManagedProcess,
    ProcessRegistry,
    surefoot_command,
)

MODEL_KEY_SECRET = "model_key"
"""The secret name the connections of these tests give as api_key_secret."""
MODEL_KEY = "sk-test-" + uuid.uuid4().hex
"""Its value, held by the connector worker only (SUREFOOT_SECRET_MODEL_KEY): a test checks
it never reaches the history, a log or the CLI's output."""

# A schema the tests' models must meet: a ticket class and a confidence.
TICKET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label", "confidence"],
    "additionalProperties": False,
    "properties": {
        "label": {"enum": ["bug", "billing", "question"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

# Quick retries, so that a delay the tests see is the endpoint's Retry-After, not the policy.
QUICK_RETRY = common_pb2.RetryPolicy(
    max_attempts=4,
    initial_interval_seconds=0.2,
    backoff_coefficient=2,
    max_interval_seconds=1,
    jitter=0.1,
)

StartAiWorker = Callable[..., ManagedProcess]
"""The `ai_worker` fixture: starts a connector worker process holding the model key."""


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """A scripted OpenAI-compatible endpoint on a free port (unscripted calls answer 500)."""
    with ModelServer() as server:
        yield server


@pytest.fixture
def ai_worker(control_plane: ControlPlane, processes: ProcessRegistry) -> Iterator[StartAiWorker]:
    """Starts `surefoot connectors worker` processes on the test's control plane.

    Each holds MODEL_KEY as the secret `model_key`, plus `env`; returned once the control
    plane welcomed it, killed before the control plane stops.
    """
    started: list[ManagedProcess] = []

    def start(*extra_args: str, **env: str) -> ManagedProcess:
        args = surefoot_command("connectors", "worker", "--address", control_plane.address)
        environment = {
            **processes.env,
            f"SUREFOOT_SECRET_{MODEL_KEY_SECRET.upper()}": MODEL_KEY,
            **env,
        }
        name = f"{len(processes.processes) + 1:02d}-ai-connector-worker"
        process = ManagedProcess(name, [*args, *extra_args], processes.log_dir, environment)
        processes.processes.append(process)
        started.append(process)
        process.wait_for_stdout(WORKER_CONNECTED)
        return process

    yield start
    for process in started:
        process.kill()


def connection(
    server: ModelServer, name: str = "main", model: str | None = None, **fields: Any
) -> definition_pb2.ModelConnection:
    """A ModelConnection to the scripted server, keyed by MODEL_KEY_SECRET; `model` is the
    name the server's script is keyed by (the connection's name by default)."""
    return definition_pb2.ModelConnection(
        name=name,
        base_url=server.base_url,
        model=model or name,
        api_key_secret=MODEL_KEY_SECRET,
        **fields,
    )


def ai_definition(
    name: str,
    models: Sequence[definition_pb2.ModelConnection],
    *,
    fallbacks: Sequence[definition_pb2.AiFallback] = (),
    schema: dict[str, Any] | None = None,
    then: Sequence[definition_pb2.Node] = (),
    **ai_fields: Any,
) -> definition_pb2.WorkflowDefinition:
    """A workflow whose node `classify` asks models[0] to classify the run input's ticket.

    Args:
        name: The workflow's name (version "1").
        models: The definition's connections; the node calls the first.
        fallbacks: The node's fallbacks.
        schema: The output schema (TICKET_SCHEMA by default).
        then: Nodes after `classify` (the first one follows it).
        ai_fields: More AiNode fields (max_repairs, timeout_seconds, retry, redact_prompt...);
            the retry policy is QUICK_RETRY unless given.
    """
    fields: dict[str, Any] = {
        "input": "input",
        "system_prompt": "You classify support tickets. Reply with JSON only.",
        "user_prompt": "Ticket from {{ input.customer }}: {{ input.text }}",
        "model": models[0].name,
        "output_schema_json": json.dumps(schema or TICKET_SCHEMA),
        "retry": QUICK_RETRY,
        **ai_fields,
    }
    node = definition_pb2.Node(id="classify", ai=definition_pb2.AiNode(**fields))
    node.ai.fallbacks.extend(fallbacks)
    if then:
        node.next = then[0].id
    return definition_pb2.WorkflowDefinition(
        name=name, version="1", nodes=[node, *then], start="classify", models=list(models)
    )


TICKET = {"customer": "ada", "text": "the invoice was charged twice"}
"""A run input for ai_definition's prompt."""
