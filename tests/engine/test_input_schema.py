"""Input schemas: one that recurses without end is refused at registration, and checking an
input never recurses without bound."""

from __future__ import annotations

import json
from typing import Any

import pytest
from surefoot.v1 import common_pb2

from controlplane.engine.checks import SCHEMA_FIELD, schema_problems
from controlplane.engine.definition import compile_definition, validate_definition
from controlplane.engine.validation import retry_policy_problems
from tests.engine.workflow_builders import NO_STEP_TYPES, task_node, workflow

FIELD = "definition.input_schema_json"


def with_schema(schema: Any) -> list[tuple[str, str]]:
    proto = workflow(task_node("charge"))
    proto.input_schema_json = json.dumps(schema)
    return validate_definition(proto, NO_STEP_TYPES)


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"anyOf": [{"type": "string"}, {"$ref": "#"}]},
        {"properties": {"a": {"allOf": [{"$ref": "#/properties/a"}]}}},
        {"if": {"required": ["a"]}, "then": {"$ref": "#"}},
    ],
)
def test_a_schema_that_applies_itself_to_the_same_value_is_refused(schema: Any) -> None:
    problems = with_schema(schema)
    assert [field for field, _ in problems] == [FIELD]
    assert "recurses" in problems[0][1]


def test_a_reference_to_nowhere_is_refused() -> None:
    problems = with_schema({"$ref": "#/$defs/missing"})
    assert [field for field, _ in problems] == [FIELD]


@pytest.mark.parametrize(
    "schema",
    [
        # Recursion that descends into the value ends with it.
        {"type": "object", "properties": {"child": {"$ref": "#"}}},
        {
            "type": "array",
            "items": {"$ref": "#/$defs/node"},
            "$defs": {"node": {"type": "integer"}},
        },
        {
            "$defs": {"tree": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
            "$ref": "#/$defs/tree",
        },
    ],
)
def test_a_schema_that_recurses_into_the_value_is_accepted(schema: Any) -> None:
    assert with_schema(schema) == []


def test_checking_a_deep_input_against_a_recursive_schema_is_bounded() -> None:
    proto = workflow(task_node("charge"))
    proto.input_schema_json = json.dumps(
        {"type": "object", "properties": {"child": {"$ref": "#"}}, "required": ["child"]}
    )
    definition = compile_definition(proto)
    value: Any = {}
    for _ in range(5_000):
        value = {"child": value}
    problems = definition.input_problems(value)
    assert problems and problems[0][0] == "/"
    assert definition.input_problems({"child": {"child": 1}})[0][0] == "/child/child"


@pytest.mark.parametrize(
    ("policy", "where"),
    [
        (common_pb2.RetryPolicy(max_attempts=-1), "step.retry.max_attempts"),
        (common_pb2.RetryPolicy(initial_interval_seconds=-1), "step.retry"),
        (common_pb2.RetryPolicy(max_interval_seconds=float("nan")), "step.retry"),
        (common_pb2.RetryPolicy(backoff_coefficient=float("inf")), "step.retry"),
        (common_pb2.RetryPolicy(jitter=float("-inf")), "step.retry"),
    ],
)
def test_retry_policy_problems_refuse_negative_and_non_finite_values(
    policy: common_pb2.RetryPolicy, where: str
) -> None:
    problems = retry_policy_problems("step.retry", policy)
    assert [field for field, _ in problems] == [where]
    assert retry_policy_problems("step.retry", common_pb2.RetryPolicy(max_attempts=3)) == []


@pytest.mark.parametrize("text", ["5", '"object"', "[1]", "null"])
def test_a_schema_that_is_not_an_object_is_refused_with_a_reason(text: str) -> None:
    assert schema_problems(text) == [
        (SCHEMA_FIELD, "is not a JSON Schema: it must be a JSON object (or true/false)")
    ]
