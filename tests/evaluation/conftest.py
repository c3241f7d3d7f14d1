"""Fixtures of the evaluation tests: a scripted OpenAI-compatible server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controlplane.model_server import ModelServer


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    """The model endpoint of the test's definitions (controlplane/model_server.py): replies
    are scripted per model name, and an unscripted call gets a 500, so it shows."""
    with ModelServer() as server:
        yield server


# The connector worker holding the model key, as the AI node's end-to-end tests start it.
from tests.e2e_ai.conftest import ai_worker  # noqa: E402, F401
