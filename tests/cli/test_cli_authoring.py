"""Authoring: the YAML/JSON shape, the Python builder and the loader, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from surefoot.v1 import common_pb2, definition_pb2
from surefoot_worker.authoring import (
    DefinitionFileError,
    Workflow,
    definition_from_dict,
    definition_to_dict,
    load_definitions,
)

ORDERS_YAML = Path(__file__).parents[2] / "workers/surefoot_worker/examples/orders.yaml"

EVERY_FIELD = {
    "name": "refunds",
    "version": "2026-11-01",
    "description": "Refund an order",
    "nodes": [
        {
            "id": "refund",
            "next": "notify",
            "description": "money back",
            "task": {
                "step_type": "refund-card",
                "step_version": "3",
                "input": "{order: input.order_id}",
                "retry": {
                    "max_attempts": 7,
                    "initial_interval_seconds": 0.5,
                    "backoff_coefficient": 1.5,
                    "max_interval_seconds": 30,
                    "jitter": 0.1,
                    "non_retryable_error_types": ["CardClosed", "Fraud"],
                },
                "idempotency": "key",
                "timeout_seconds": 12.5,
                "on_failure": "compensate",
                "on_failure_next": "notify",
                "compensate_step": "undo-refund",
                "compensate_input": "self.output",
            },
        },
        {
            "id": "notify",
            "task": {"step_type": "email", "idempotency": "none", "on_failure": "fail"},
        },
    ],
    "start": "refund",
    "input_schema": {"properties": {"order_id": {"type": "string"}}, "type": "object"},
    "labels": {"team": "payments"},
}


def test_the_orders_example_round_trips_losslessly() -> None:
    document = yaml.safe_load(ORDERS_YAML.read_text())
    definition = definition_from_dict(document)
    assert definition_to_dict(definition) == document
    assert definition_from_dict(definition_to_dict(definition)) == definition


def test_every_field_round_trips_losslessly() -> None:
    definition = definition_from_dict(EVERY_FIELD)
    assert definition_to_dict(definition) == EVERY_FIELD
    assert definition.nodes[0].task.idempotency == common_pb2.IDEMPOTENCY_KEY
    assert definition.nodes[0].task.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE
    assert definition.nodes[1].task.idempotency == common_pb2.IDEMPOTENCY_NONE
    assert json.loads(definition.input_schema_json) == EVERY_FIELD["input_schema"]


def test_a_schema_string_that_is_not_canonical_stays_a_string() -> None:
    # Rewriting it would change the content hash of an already registered definition.
    definition = definition_pb2.WorkflowDefinition(
        name="w", version="1", input_schema_json='{ "type": "object" }'
    )
    document = definition_to_dict(definition)
    assert document["input_schema_json"] == '{ "type": "object" }'
    assert definition_from_dict(document) == definition


def test_defaults_are_left_out() -> None:
    document = definition_to_dict(
        definition_from_dict({"name": "w", "version": "1", "nodes": [{"id": "a", "task": {}}]})
    )
    assert document == {"name": "w", "version": "1", "nodes": [{"id": "a", "task": {}}]}


def test_full_enum_names_and_camel_case_are_accepted() -> None:
    short = definition_from_dict(
        {
            "name": "w",
            "nodes": [
                {
                    "id": "a",
                    "task": {
                        "step_type": "s",
                        "idempotency": "natural",
                        "on_failure": "dead_letter",
                    },
                }
            ],
        }
    )
    full = definition_from_dict(
        {
            "name": "w",
            "nodes": [
                {
                    "id": "a",
                    "task": {
                        "stepType": "s",
                        "idempotency": "IDEMPOTENCY_NATURAL",
                        "onFailure": "FAILURE_POLICY_DEAD_LETTER",
                    },
                }
            ],
        }
    )
    assert short == full


def test_an_unquoted_yaml_version_number_is_a_label() -> None:
    assert definition_from_dict({"name": "w", "version": 3}).version == "3"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"name": "w", "nodes": [{"id": "a", "task": {"step_type": "s", "retri": {}}}]},
            "nodes[0].task.retri: unknown field (expected one of: step_type, step_version,",
        ),
        (
            {"name": "w", "nodes": [{"id": "a"}, {"id": "b", "task": {"idempotency": "maybe"}}]},
            "nodes[1].task.idempotency: unknown value 'maybe' "
            "(expected one of: key, natural, none)",
        ),
        (
            {"name": "w", "nodes": [{"id": "a", "task": {"retry": {"max_attempts": 2.5}}}]},
            "nodes[0].task.retry.max_attempts: expected an integer, got 2.5",
        ),
        ({"name": "w", "version": 1.1}, "version: expected a string, got 1.1 (quote it)"),
        ({"name": "w", "nodes": {"id": "a"}}, "nodes: expected a list, got a mapping"),
        ({"nam": "w"}, "nam: unknown field"),
    ],
)
def test_mistakes_name_the_field_path_on_one_line(document: dict, message: str) -> None:
    with pytest.raises(DefinitionFileError) as error:
        definition_from_dict(document)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


def test_the_builder_makes_the_same_message_as_the_yaml() -> None:
    retry = {
        "max_attempts": 5,
        "initial_interval_seconds": 0.2,
        "backoff_coefficient": 2,
        "jitter": 0.2,
    }
    built = (
        Workflow("orders", "1", description="Reserve stock, charge the card, ship the order.")
        .task(
            "reserve",
            "reserve-stock",
            step_version="1",
            input="input",
            idempotency="natural",
            retry=retry,
        )
        .task(
            "charge", "charge-card", step_version="1", input="input", idempotency="key", retry=retry
        )
        .task(
            "ship",
            "ship-order",
            step_version="1",
            input="{order_id: input.order_id, charge: steps.charge.output}",
            idempotency="key",
            retry=retry,
        )
        .build()
    )
    assert built == load_definitions(str(ORDERS_YAML))[0]


def test_the_builder_takes_the_sdks_retry_policy() -> None:
    # The SDK's RetryPolicy is optional for authoring; skip rather than fail without it.
    RetryPolicy = pytest.importorskip("surefoot_worker._retry").RetryPolicy
    policy = RetryPolicy(
        max_attempts=5,
        initial_interval=0.2,
        backoff_coefficient=2,
        jitter=0.2,
        non_retryable_error_types=["Fraud"],
    )
    built = Workflow("w", "1").task("a", "s", retry=policy, on_failure="fail").build()
    assert built.nodes[0].task.retry == policy.to_proto()
    assert built.nodes[0].task.on_failure == definition_pb2.FAILURE_POLICY_FAIL


def test_the_builder_refuses_duplicate_node_ids_and_unknown_enums() -> None:
    with pytest.raises(ValueError, match="duplicate node id 'a'"):
        Workflow("w", "1").task("a", "s").task("a", "t")
    with pytest.raises(ValueError, match="unknown value 'sometimes'"):
        Workflow("w", "1").task("a", "s", idempotency="sometimes")


def test_a_file_may_hold_a_list_or_a_definitions_key(tmp_path: Path) -> None:
    as_list = tmp_path / "list.yaml"
    as_list.write_text("- {name: a, version: '1'}\n- {name: b, version: '1'}\n")
    as_key = tmp_path / "key.json"
    as_key.write_text(json.dumps({"definitions": [{"name": "a", "version": "1"}, {"name": "b"}]}))
    assert [d.name for d in load_definitions(str(as_list))] == ["a", "b"]
    assert [d.name for d in load_definitions(str(as_key))] == ["a", "b"]


def test_a_python_module_contributes_its_messages_and_builders(tmp_path: Path) -> None:
    module = tmp_path / "flows.py"
    module.write_text(
        "from surefoot.v1 import definition_pb2\n"
        "from surefoot_worker.authoring import Workflow\n"
        "first = Workflow('first', '1').task('a', 's', idempotency='key')\n"
        "alias = first\n"
        "second = definition_pb2.WorkflowDefinition(name='second', version='1')\n"
        "_private = Workflow('hidden', '1')\n"
    )
    assert [d.name for d in load_definitions(str(module))] == ["first", "second"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.yaml",
            "name: w\n  version: 1\n",
            "bad.yaml:2:10: YAML syntax error: mapping values are not allowed here",
        ),
        ("bad.json", '{"name": "w",\n "version": }', "bad.json:2:13: JSON syntax error:"),
        ("empty.yaml", "# nothing yet\n", "empty.yaml: no definitions found"),
        (
            "many.yaml",
            "definitions:\n- {name: a}\n- {name: b, nodes: [{idd: x}]}\n",
            "many.yaml: definitions[1]: nodes[0].idd: unknown field",
        ),
        ("nodefs.py", "x = 1\n", "nodefs.py: no definitions found"),
        (
            "broken.py",
            "raise RuntimeError('no\\nway')\n",
            "broken.py: cannot import: RuntimeError: no",
        ),
    ],
)
def test_bad_files_raise_one_line_errors(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DefinitionFileError) as error:
        load_definitions(str(path))
    assert str(error.value).startswith(f"{tmp_path}/{message}")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.yaml", "missing.yaml: file not found"),
        ("no_such_module_here", "no_such_module_here: no such module"),
        ("some/dir/file.txt", "some/dir/file.txt: expected a .yaml, .yml, .json or .py file"),
        ("os.path", "os.path: no definitions found"),
    ],
)
def test_unreadable_sources_raise_one_line_errors(source: str, message: str) -> None:
    with pytest.raises(DefinitionFileError) as error:
        load_definitions(source)
    assert str(error.value).startswith(message)


# --- node kinds besides task -------------------------------------------------------------------

NODE_KINDS: dict[str, dict[str, Any]] = {
    "approval": {
        "title": "Approve the refund",
        "approvers": ["alice", "group:finance"],
        "show": {"customer": "input.customer", "amount": "steps.quote.output.amount"},
        "timeout_seconds": 86400,
        "on_timeout": "escalate",
        "escalate_to": ["group:directors"],
        "approved_next": "after",
        "rejected_next": "after",
    },
    "sleep": {"seconds": 1.5},
    "sleep_until": {"until": "input.trial_ends_at"},
    "wait_event": {
        "event_name": "contract-signed",
        "correlation_key": "input.customer",
        "timeout_seconds": 604800,
        "timeout_next": "after",
        "retention_seconds": 3600,
    },
    "switch": {
        "cases": [
            {"condition": "input.amount > `1000`", "next": "after"},
            {"condition": "input.plan == 'enterprise'", "next": "after"},
        ],
        "default_next": "after",
    },
    "parallel": {"branches": ["after", "other"], "join": "all"},
    "task": {
        "step_type": "provision-infrastructure",
        "on_failure": "compensate",
        "compensate_step": "deprovision-infrastructure",
        "compensate_input": "{workspace_id: self.output.workspace_id}",
        "compensate_idempotency": "natural",
        "compensate_retry": {"max_attempts": 10, "initial_interval_seconds": 2},
    },
}


def _one_node(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "kinds",
        "version": "1",
        "nodes": [
            {"id": "it", "next": "after", kind.removesuffix("_until"): body},
            {"id": "after", "task": {"step_type": "s"}},
            {"id": "other", "task": {"step_type": "s"}},
        ],
    }


@pytest.mark.parametrize("kind", NODE_KINDS)
def test_each_node_kind_round_trips_through_yaml(kind: str) -> None:
    document = _one_node(kind, NODE_KINDS[kind])
    definition = definition_from_dict(yaml.safe_load(yaml.safe_dump(document)))
    assert definition.nodes[0].WhichOneof("kind") == kind.removesuffix("_until")
    back = definition_to_dict(definition)
    assert back == document
    assert definition_from_dict(yaml.safe_load(yaml.safe_dump(back))) == definition


def test_the_new_fields_land_where_the_proto_says() -> None:
    approval = definition_from_dict(_one_node("approval", NODE_KINDS["approval"])).nodes[0]
    assert dict(approval.approval.show) == NODE_KINDS["approval"]["show"]
    assert list(approval.approval.approvers) == ["alice", "group:finance"]
    switch = definition_from_dict(_one_node("switch", NODE_KINDS["switch"])).nodes[0].switch
    assert [(c.condition, c.next) for c in switch.cases] == [
        ("input.amount > `1000`", "after"),
        ("input.plan == 'enterprise'", "after"),
    ]
    task = definition_from_dict(_one_node("task", NODE_KINDS["task"])).nodes[0].task
    assert task.compensate_idempotency == common_pb2.IDEMPOTENCY_NATURAL
    assert task.compensate_retry.max_attempts == 10
    assert task.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE


@pytest.mark.parametrize("kind", ["approval", "sleep", "wait_event", "switch", "parallel"])
def test_a_kind_with_nothing_after_it_is_that_kind_at_its_defaults(kind: str) -> None:
    # `approval:` alone in YAML is null; it must still make the node an approval.
    definition = definition_from_dict(
        yaml.safe_load(f"name: w\nversion: '1'\nnodes:\n  - id: a\n    {kind}:\n")
    )
    assert definition.nodes[0].WhichOneof("kind") == kind
    assert definition_to_dict(definition)["nodes"] == [{"id": "a", kind: {}}]


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            {"id": "a", "task": {"compensate_idempotency": "sometimes"}},
            "nodes[0].task.compensate_idempotency: unknown value 'sometimes' "
            "(expected one of: key, natural, none)",
        ),
        (
            {"id": "a", "approval": {"show": ["input.x"]}},
            "nodes[0].approval.show: expected a mapping, got a list",
        ),
        (
            {"id": "a", "switch": {"cases": {"condition": "x"}}},
            "nodes[0].switch.cases: expected a list, got a mapping",
        ),
        (
            {"id": "a", "switch": {"cases": [{"when": "x"}]}},
            "nodes[0].switch.cases[0].when: unknown field (expected one of: condition, next)",
        ),
        (
            {"id": "a", "sleep": {"seconds": "an hour"}},
            "nodes[0].sleep.seconds: expected a number, got 'an hour'",
        ),
        (
            {"id": "a", "parallel": {"branches": "b"}},
            "nodes[0].parallel.branches: expected a list, got 'b'",
        ),
    ],
)
def test_mistakes_in_the_new_kinds_name_the_field(node: dict, message: str) -> None:
    with pytest.raises(DefinitionFileError) as error:
        definition_from_dict({"name": "w", "nodes": [node]})
    assert str(error.value) == message


def test_the_builder_declares_compensation_and_fallback() -> None:
    built = (
        Workflow("w", "1")
        .task(
            "provision",
            "provision-infrastructure",
            on_failure_next="apologise",
            compensate_step="deprovision-infrastructure",
            compensate_input="{workspace_id: self.output.workspace_id}",
            compensate_idempotency="natural",
            compensate_retry={"max_attempts": 10, "initial_interval_seconds": 2},
        )
        .build()
    )
    expected = {"step_type": "provision-infrastructure", "on_failure_next": "apologise"}
    expected.update({k: v for k, v in NODE_KINDS["task"].items() if k.startswith("compensate")})
    assert definition_to_dict(built)["nodes"][0]["task"] == expected
