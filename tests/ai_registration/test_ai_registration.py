"""Acceptance: a definition with a broken AI node or model connection is refused at
registration over gRPC (INVALID_ARGUMENT naming the field) and nothing is written; a valid
one registers and reads back whole."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import grpc
import pytest
from surefoot.v1 import definition_pb2
from surefoot.v1 import workflow_service_pb2 as ws

from tests.ai_registration.ai_definitions import (
    ai_node,
    ai_workflow,
    connection,
    dead_letter_fallback,
    default_fallback,
    model_fallback,
    review_fallback,
)
from tests.e2e.test_e2e_bad_input import field_violations, refusal
from tests.engine.workflow_builders import task_node
from tests.support.databases import database_params, fresh_database
from tests.support.processes import PROCESSES, ControlPlane, ProcessRegistry, process_environment
from tests.support.runs import register


@pytest.fixture(scope="module", params=database_params())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """One control plane per store for the module: registration needs no worker."""
    directory = tmp_path_factory.mktemp("ai-registration")
    with fresh_database(request.param, directory) as url:
        registry = ProcessRegistry(directory / "processes", process_environment())
        try:
            control_plane = ControlPlane(registry, url)
            control_plane.start()
            yield control_plane
            assert control_plane.stop() == 0
        finally:
            registry.kill_all()


@pytest.fixture(autouse=True)
def _show_server_output_on_failure(request: pytest.FixtureRequest, server: ControlPlane) -> None:
    request.node.stash[PROCESSES] = server.registry


def definitions(server: ControlPlane) -> list[tuple[str, str, str]]:
    listed = server.stub.ListDefinitions(ws.ListDefinitionsRequest(), timeout=30)
    return sorted((d.name, d.version, d.content_hash) for d in listed.definitions)


OTHER = {"category": "other", "urgent": False}
Case = Callable[[], definition_pb2.WorkflowDefinition]

CASES: dict[str, tuple[Case, str, str]] = {
    "unknown model": (
        lambda: ai_workflow(ai_node(model="nope")),
        "definition.nodes[0].ai.model",
        "model 'nope' is not in models",
    ),
    "unknown fallback model": (
        lambda: ai_workflow(ai_node(fallbacks=(model_fallback("ghost"),))),
        "definition.nodes[0].ai.fallbacks[0].model",
        "model 'ghost' is not in models",
    ),
    "model after a default": (
        lambda: ai_workflow(
            ai_node(fallbacks=(default_fallback(OTHER), model_fallback("spare"))),
            models=(connection(), connection("spare")),
        ),
        "definition.nodes[0].ai.fallbacks[1]",
        "nothing may follow fallbacks[0]",
    ),
    "two finals": (
        lambda: ai_workflow(ai_node(fallbacks=(review_fallback(), dead_letter_fallback()))),
        "definition.nodes[0].ai.fallbacks[1]",
        "nothing may follow fallbacks[0]",
    ),
    "default breaking the schema": (
        lambda: ai_workflow(ai_node(fallbacks=(default_fallback({"category": "refund"}),))),
        "definition.nodes[0].ai.fallbacks[0].default_output_json",
        "does not match the output schema",
    ),
    "default not json": (
        lambda: ai_workflow(
            ai_node(fallbacks=(definition_pb2.AiFallback(default_output_json="{oops"),))
        ),
        "definition.nodes[0].ai.fallbacks[0].default_output_json",
        "is not valid JSON",
    ),
    "prompt not a template": (
        lambda: ai_workflow(ai_node(user_prompt="Sort {{ input.text ")),
        "definition.nodes[0].ai.user_prompt",
        "not a Jinja2 template",
    ),
    "system prompt not a template": (
        lambda: ai_workflow(ai_node(system_prompt="{% if %}")),
        "definition.nodes[0].ai.system_prompt",
        "not a Jinja2 template",
    ),
    "no user prompt": (
        lambda: ai_workflow(ai_node(user_prompt="")),
        "definition.nodes[0].ai.user_prompt",
        "the user prompt is required",
    ),
    "schema not a schema": (
        lambda: ai_workflow(ai_node(schema={"type": "objekt"})),
        "definition.nodes[0].ai.output_schema_json",
        "is not a valid JSON Schema",
    ),
    "too many repairs": (
        lambda: ai_workflow(ai_node(max_repairs=11)),
        "definition.nodes[0].ai.max_repairs",
        "must be between 0 and 10",
    ),
    "duplicate model name": (
        lambda: ai_workflow(ai_node(), models=(connection(), connection())),
        "definition.models[1].name",
        "the name is used twice",
    ),
    "bad model name": (
        lambda: ai_workflow(ai_node(model="a b"), models=(connection("a b"),)),
        "definition.models[0].name",
        "must be 1-64 letters",
    ),
    "credentials in the url": (
        lambda: ai_workflow(
            ai_node(), models=(connection(base_url="https://user:sk-secret@api.example/v1"),)
        ),
        "definition.models[0].base_url",
        "must not carry credentials",
    ),
    "not http": (
        lambda: ai_workflow(ai_node(), models=(connection(base_url="ftp://example/v1"),)),
        "definition.models[0].base_url",
        "must be an http or https URL",
    ),
    "unused model": (
        lambda: ai_workflow(ai_node(), models=(connection(), connection("spare"))),
        "definition.models[1].name",
        "no ai node uses it",
    ),
    "failure node missing": (
        lambda: ai_workflow(ai_node(on_failure_next="manual")),
        "definition.nodes[0].ai.on_failure_next",
        "fallback node 'manual' does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_broken_ai_definition_is_refused_naming_the_field_and_writes_nothing(
    server: ControlPlane, case: str
) -> None:
    build, field, words = CASES[case]
    bad = build()
    bad.name = "bad-" + case.replace(" ", "-")
    before = definitions(server)

    error = refusal(lambda: register(server.stub, bad))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert any(f == field and words in d for f, d in violations), violations
    # A secret put in a URL is not echoed back.
    assert "sk-secret" not in (error.details() or "")
    assert definitions(server) == before


def test_a_valid_ai_definition_registers_and_reads_back_whole(server: ControlPlane) -> None:
    good = ai_workflow(
        ai_node(
            next="route",
            fallbacks=(model_fallback("spare"), review_fallback(("group:support",), 3600)),
            max_repairs=3,
            max_run_tokens=5000,
        ),
        task_node("route"),
        models=(connection(), connection("spare", model="small", structured_output="none")),
        name="ai-good",
    )
    good.require_eval = True

    register(server.stub, good)

    stored = server.stub.GetDefinition(
        ws.GetDefinitionRequest(name="ai-good", version="1"), timeout=30
    ).definition
    assert stored.require_eval is True
    assert [m.name for m in stored.models] == ["main", "spare"]
    ai = stored.nodes[0].ai
    assert [f.WhichOneof("kind") for f in ai.fallbacks] == ["model", "human_review"]
    assert json.loads(ai.output_schema_json)["required"] == ["category", "urgent"]
    # Registering the same content again is a no-op (law 6).
    register(server.stub, good)
    assert [d for d in definitions(server) if d[0] == "ai-good"][0][1] == "1"
