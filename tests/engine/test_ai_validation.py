"""Validation of AI nodes and model connections, pure: every problem at once, each named by
its field."""

from __future__ import annotations

import math

from surefoot.v1 import definition_pb2

from controlplane.engine.step_types import NO_STEP_TYPES
from controlplane.engine.validation import validate_definition
from tests.ai_registration.ai_definitions import (
    ai_node,
    ai_workflow,
    connection,
    dead_letter_fallback,
    model_fallback,
    review_fallback,
)
from tests.engine.workflow_builders import task_node


def problems(definition: definition_pb2.WorkflowDefinition) -> dict[str, str]:
    return dict(validate_definition(definition, NO_STEP_TYPES))


def test_a_valid_ai_definition_has_no_problems() -> None:
    definition = ai_workflow(
        ai_node(next="after", fallbacks=(model_fallback("spare"), dead_letter_fallback())),
        task_node("after"),
        models=(connection(), connection("spare", base_url="https://api.example:8443/v1")),
    )
    assert problems(definition) == {}


def test_every_problem_of_a_broken_node_is_reported_at_once() -> None:
    node = ai_node(
        user_prompt="{{ unclosed",
        schema={"type": 5},
        fallbacks=(definition_pb2.AiFallback(), review_fallback(timeout_seconds=-1)),
        max_repairs=-1,
    )
    node.ai.temperature = math.nan
    node.ai.input = "input.["

    found = problems(ai_workflow(node))

    where = "definition.nodes[0].ai"
    assert set(found) == {
        f"{where}.input",
        f"{where}.user_prompt",
        f"{where}.output_schema_json",
        f"{where}.fallbacks[0]",
        f"{where}.fallbacks[1].human_review.timeout_seconds",
        f"{where}.max_repairs",
        f"{where}.temperature",
    }
    assert all(message.startswith("node 'classify': ") for message in found.values())


def test_a_dead_letter_fallback_must_say_true() -> None:
    node = ai_node(fallbacks=(definition_pb2.AiFallback(dead_letter=False),))
    # proto3 keeps a oneof member set to its default as set.
    assert node.ai.fallbacks[0].WhichOneof("kind") == "dead_letter"

    found = problems(ai_workflow(node))

    assert found == {
        "definition.nodes[0].ai.fallbacks[0].dead_letter": "node 'classify': set it to true"
    }


def test_connections_are_checked_whole() -> None:
    definition = ai_workflow(
        ai_node(model="main"),
        models=(
            connection(base_url="http://api.example:notaport/v1", model=""),
            connection("spare", structured_output="xml", input_price=-1),
        ),
    )

    found = problems(definition)

    assert set(found) == {
        "definition.models[0].base_url",
        "definition.models[0].model",
        "definition.models[1].structured_output",
        "definition.models[1]",
        "definition.models[1].name",
    }
    assert "no ai node uses it" in found["definition.models[1].name"]


def test_a_definition_without_ai_nodes_may_not_declare_models() -> None:
    definition = definition_pb2.WorkflowDefinition(
        name="plain", version="1", nodes=[task_node("a")], models=[connection()]
    )
    assert problems(definition) == {"definition.models[0].name": "model 'main': no ai node uses it"}
