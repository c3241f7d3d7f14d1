"""Calling a connector step in-process, as the worker calls a plain handler."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from surefoot_worker import StepContext, StepDefinition

from tests.support.processes import ManagedProcess

API_TOKEN = "tok-" + uuid.uuid4().hex
"""The value of the secret `api_token` the tests' connector workers hold."""

StepsFor = Callable[..., dict[str, StepDefinition]]
"""The `steps_with` fixture: the connector steps by name, with the given secrets."""

StartConnectorWorker = Callable[..., ManagedProcess]
"""The `connector_worker` fixture: starts a connector worker process, once connected."""


def step_context(
    step_type: str, key: str | None = None, attempt: int = 1, node_id: str = "call"
) -> StepContext:
    """The context the SDK gives an attempt; a new idempotency key unless one is given."""
    run_id = str(uuid.uuid4())
    return StepContext(
        task_id=f"task-{run_id}",
        run_id=run_id,
        node_id=node_id,
        step_type=step_type,
        step_version="1",
        attempt=attempt,
        idempotency_key=key or f"{run_id}:{node_id}",
        workflow_name="connector-test",
        namespace="default",
    )


def run_step(step: StepDefinition, value: Any, key: str | None = None, attempt: int = 1) -> Any:
    """One attempt of a connector step, called as the worker calls a plain handler."""
    return step.handler(step_context(step.name, key, attempt), value)
