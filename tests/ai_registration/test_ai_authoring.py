"""Authoring AI workflows: the YAML form and the Python builder make the same message, the
JSON fields may be written as objects, and a document read back registers unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from surefoot_worker.authoring import (
    DefinitionFileError,
    Workflow,
    definition_from_dict,
    definition_to_dict,
    load_definitions,
)

from controlplane.engine.definition import compile_definition
from controlplane.engine.step_types import NO_STEP_TYPES
from controlplane.engine.validation import validate_definition

SCHEMA = {
    "type": "object",
    "properties": {"category": {"enum": ["billing", "bug"]}},
    "required": ["category"],
}

DOCUMENT = """
name: triage
version: "1"
require_eval: true
models:
  - name: main
    base_url: https://api.example/v1
    model: gpt-small
    api_key_secret: openai
    input_price_per_million: 0.15
  - name: spare
    base_url: http://localhost:11434/v1
    model: llama
    structured_output: json_object
nodes:
  - id: classify
    ai:
      model: main
      input: input.ticket
      system_prompt: You sort tickets.
      user_prompt: "Sort: {{ input.text }}"
      output_schema:
        type: object
        properties:
          category: {enum: [billing, bug]}
        required: [category]
      max_repairs: 1
      max_run_tokens: 4000
      on_failure: fail
      fallbacks:
        - model: spare
        - default_output: {category: bug}
"""


def built() -> Workflow:
    return (
        Workflow("triage", "1", require_eval=True)
        .model(
            "main",
            "https://api.example/v1",
            "gpt-small",
            api_key_secret="openai",
            input_price_per_million=0.15,
        )
        .model("spare", "http://localhost:11434/v1", "llama", structured_output="json_object")
        .ai(
            "classify",
            model="main",
            input="input.ticket",
            system_prompt="You sort tickets.",
            user_prompt="Sort: {{ input.text }}",
            output_schema=SCHEMA,
            max_repairs=1,
            max_run_tokens=4000,
            on_failure="fail",
            fallbacks=[{"model": "spare"}, {"default_output": {"category": "bug"}}],
        )
    )


def test_the_yaml_form_and_the_builder_make_the_same_valid_definition() -> None:
    from_yaml = definition_from_dict(yaml.safe_load(DOCUMENT))
    from_builder = built().build()

    assert from_yaml == from_builder
    assert from_yaml.require_eval is True
    ai = from_yaml.nodes[0].ai
    assert json.loads(ai.output_schema_json) == SCHEMA
    assert json.loads(ai.fallbacks[1].default_output_json) == {"category": "bug"}
    assert validate_definition(from_yaml, NO_STEP_TYPES) == []
    assert compile_definition(from_yaml).models["spare"]["structured_output"] == "json_object"


def test_a_document_read_back_writes_the_json_as_objects_and_makes_the_same_message() -> None:
    definition = built().build()

    document = definition_to_dict(definition)

    ai = document["nodes"][0]["ai"]
    assert ai["output_schema"] == SCHEMA
    assert ai["fallbacks"][1] == {"default_output": {"category": "bug"}}
    assert document["require_eval"] is True
    assert definition_from_dict(document) == definition


def test_json_strings_that_are_not_canonical_stay_strings_so_the_hash_never_changes() -> None:
    definition = built().build()
    definition.nodes[0].ai.output_schema_json = json.dumps(SCHEMA, indent=2)

    document = definition_to_dict(definition)

    assert document["nodes"][0]["ai"]["output_schema_json"] == json.dumps(SCHEMA, indent=2)
    assert definition_from_dict(document) == definition


def test_both_forms_of_one_field_are_refused_in_one_line() -> None:
    document = yaml.safe_load(DOCUMENT)
    document["nodes"][0]["ai"]["output_schema_json"] = "{}"

    with pytest.raises(DefinitionFileError) as refused:
        definition_from_dict(document)

    assert str(refused.value) == (
        "nodes[0].ai.output_schema: give output_schema or output_schema_json, not both"
    )


def test_a_mistyped_ai_field_names_its_path() -> None:
    document = yaml.safe_load(DOCUMENT)
    document["nodes"][0]["ai"]["max_repairs"] = "two"

    with pytest.raises(DefinitionFileError) as refused:
        definition_from_dict(document)

    assert str(refused.value).startswith("nodes[0].ai.max_repairs: expected an integer")


def test_a_duplicate_model_in_the_builder_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate model 'main'"):
        built().model("main", "http://x/v1", "m")


def test_the_shipped_support_example_loads_and_validates() -> None:
    example = str(Path(__file__).parents[2] / "workers/surefoot_worker/examples/support.yaml")

    [definition] = load_definitions(example)

    assert definition.nodes[0].WhichOneof("kind") == "ai"
    assert validate_definition(definition, NO_STEP_TYPES) == []
