"""The `Workflow` builder covers `definition.proto`: every node kind, every field.

The samples are generated from the proto descriptors, so a field or node kind added to the
proto without its builder counterpart fails here rather than being unreachable from Python.
"""

from __future__ import annotations

import datetime
import inspect
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from surefoot.v1 import common_pb2, definition_pb2
from surefoot_worker import RetryPolicy, Workflow
from surefoot_worker.authoring import definition_from_dict, load_definitions

EXAMPLES = Path(__file__).parents[2] / "workers/surefoot_worker/examples"
NODE = definition_pb2.Node.DESCRIPTOR
KINDS = [field.name for field in NODE.oneofs_by_name["kind"].fields]
# Node fields every kind method takes; `id` is its first argument, `node_id`.
NODE_FIELDS = [f.name for f in NODE.fields if f.containing_oneof is None and f.name != "id"]
# WorkflowDefinition fields the constructor takes under another name, with a value for it.
CONSTRUCTOR_ALIASES = {"input_schema_json": ("input_schema", {"type": "object"})}


def _sample(field: FieldDescriptor) -> Any:
    """A value that is not the field's default, in the document (YAML) shape."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return {"label": _scalar(field.message_type.fields_by_name["value"])}
    one = _document(field.message_type) if field.message_type is not None else _scalar(field)
    return [one] if field.is_repeated else one


def _scalar(field: FieldDescriptor) -> Any:
    if field.enum_type is not None:
        last = field.enum_type.values[-1].name
        return last.removeprefix(field.enum_type.values[0].name.removesuffix("UNSPECIFIED"))
    return {
        FieldDescriptor.CPPTYPE_STRING: f"{field.name}-value",
        FieldDescriptor.CPPTYPE_BOOL: True,
        FieldDescriptor.CPPTYPE_DOUBLE: 2.5,
        FieldDescriptor.CPPTYPE_FLOAT: 2.5,
    }.get(field.cpp_type, 3)


def _document(descriptor: Descriptor) -> dict[str, Any]:
    # One member of each oneof (its first): setting them all is refused, as it should be.
    return {
        field.name: _sample(field)
        for field in descriptor.fields
        if field.containing_oneof is None or field.containing_oneof.fields[0] is field
    }


def test_the_samples_cover_every_kind() -> None:
    # Guards the parametrisation below: it is generated from the proto, so it must not be empty.
    assert {"task", "approval", "sleep", "wait_event", "switch", "parallel"} <= set(KINDS)
    assert set(NODE_FIELDS) >= {"next", "description"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_of_every_node_kind_is_reachable_from_the_builder(kind: str) -> None:
    method = getattr(Workflow, kind, None)
    assert method is not None, f"node kind {kind!r} has no Workflow.{kind}() method"
    parameters = inspect.signature(method).parameters
    message_type = NODE.fields_by_name[kind].message_type
    assert message_type is not None  # every node kind is a message
    body = _document(message_type)
    node_fields = {name: _sample(NODE.fields_by_name[name]) for name in NODE_FIELDS}
    missing = sorted(set(body) - set(parameters)) + sorted(set(node_fields) - set(parameters))
    assert not missing, f"Workflow.{kind}() takes no argument for {missing}"

    built = getattr(Workflow("w", "1"), kind)("n", **node_fields, **body).build()

    expected = definition_from_dict(
        {"name": "w", "version": "1", "nodes": [{"id": "n", **node_fields, kind: body}]}
    )
    assert built == expected
    # Every sample is a non-default value, so every field must be present in the message.
    node = built.nodes[0]
    assert {f.name for f, _ in getattr(node, kind).ListFields()} == set(body)
    assert {f.name for f, _ in node.ListFields()} == {"id", kind, *NODE_FIELDS}


def test_every_definition_field_is_reachable_from_the_constructor() -> None:
    parameters = inspect.signature(Workflow).parameters
    arguments: dict[str, Any] = {}
    document: dict[str, Any] = {}
    for field in definition_pb2.WorkflowDefinition.DESCRIPTOR.fields:
        if field.name == "nodes":
            continue  # one method per kind, checked above
        name, value = CONSTRUCTOR_ALIASES.get(field.name, (field.name, _sample(field)))
        assert name in parameters, f"Workflow() takes no argument for {field.name!r}"
        arguments[name] = value
        document[name] = value
    built = Workflow(**arguments).build()
    assert built == definition_from_dict(document)
    assert {f.name for f, _ in built.ListFields()} == set(document) - {"input_schema"} | {
        "input_schema_json"
    }


def test_the_builder_makes_the_trial_example_which_uses_every_kind() -> None:
    # Branches end with next="" and the switch picks its own successors, so the builder's
    # "each node follows the one before" is pinned where the YAML says otherwise.
    built = (
        Workflow(
            "trial",
            "1",
            "Create a customer, wait for a card, branch on the plan, set up in parallel, charge.",
        )
        .task(
            "create",
            "create-customer",
            step_version="1",
            input="input",
            idempotency="key",
            compensate_step="mark-customer-cancelled",
            compensate_input="{customer_id: self.output.customer_id}",
            compensate_idempotency="natural",
        )
        .wait_event(
            "card",
            "card-added",
            correlation_key="input.email",
            timeout_seconds=datetime.timedelta(days=1),
            timeout_next="no-card",
            retention_seconds=3600,
        )
        .switch(
            "plan",
            [("input.plan == 'enterprise'", "approve")],
            default_next="setup",
            next="",
        )
        .approval(
            "approve",
            title="Approve an enterprise trial",
            approvers=[],
            show={
                "customer": "input.customer",
                "amount": "input.amount",
                "card": "steps.card.output.card",
            },
            next="setup",
        )
        .parallel("setup", ["provision", "welcome"], join="all", next="trial-period")
        .task(
            "provision",
            "provision-infrastructure",
            step_version="1",
            input="{customer_id: steps.create.output.customer_id, plan: input.plan, "
            "region: 'eu-west-1'}",
            idempotency="key",
            compensate_step="deprovision-infrastructure",
            compensate_input="{workspace_id: self.output.workspace_id}",
            compensate_idempotency="natural",
            next="",
        )
        .task(
            "welcome",
            "send-welcome-email",
            step_version="1",
            input="{email: input.email, customer: input.customer}",
            idempotency="key",
            compensate_step="send-snag-email",
            compensate_input="{email: self.input.email, customer: self.input.customer}",
            compensate_idempotency="key",
            next="",
        )
        .sleep("trial-period", 20)
        .task(
            "charge",
            "charge-card",
            step_version="1",
            input="{customer_id: steps.create.output.customer_id, amount: input.amount, "
            "card: steps.card.output.card}",
            idempotency="key",
            compensate_step="refund-card",
            compensate_input="{charge_id: self.output.charge_id, amount: self.output.amount}",
            compensate_idempotency="key",
            next="",
        )
        .task(
            "no-card",
            "send-snag-email",
            step_version="1",
            input="{email: input.email, customer: input.customer}",
            idempotency="key",
        )
        .task(
            "close-account",
            "mark-customer-cancelled",
            step_version="1",
            input="{customer_id: steps.create.output.customer_id}",
            idempotency="natural",
        )
        .build()
    )
    assert built == load_definitions(str(EXAMPLES / "trial.yaml"))[0]


def test_switch_cases_may_be_pairs_dicts_or_messages() -> None:
    case = definition_pb2.SwitchNode.Case(condition="c", next="x")
    built = (
        Workflow("w", "1")
        .switch("s", [("a", "x"), {"condition": "b", "next": "y"}, case], next="")
        .build()
    )
    assert [(c.condition, c.next) for c in built.nodes[0].switch.cases] == [
        ("a", "x"),
        ("b", "y"),
        ("c", "x"),
    ]


def test_retry_takes_the_sdk_policy_a_message_or_a_dict_with_timedeltas() -> None:
    policy = RetryPolicy(max_attempts=4, initial_interval=1.5)
    as_dict = {"max_attempts": 4, "initial_interval": datetime.timedelta(seconds=1.5)}
    built = (
        Workflow("w", "1")
        .task("a", "s", retry=policy)
        .task("b", "s", retry=policy.to_proto())
        .task("c", "s", retry=as_dict)
        .build()
    )
    expected = common_pb2.RetryPolicy(max_attempts=4, initial_interval_seconds=1.5)
    assert [n.task.retry for n in built.nodes] == [expected] * 3


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda w: w.approval("a", timeout_seconds="soon"),
            "w.a.approval.timeout_seconds: expected a number, got 'soon'",
        ),
        (
            lambda w: w.switch("a", [{"when": "x"}]),
            "w.a.switch.cases[0].when: unknown field (expected one of: condition, next)",
        ),
        (
            lambda w: w.task("a", "s", on_failure="retry"),
            "w.a.task.on_failure: unknown value 'retry' "
            "(expected one of: dead_letter, compensate, fail)",
        ),
    ],
)
def test_builder_mistakes_name_the_node_and_field(build: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        build(Workflow("w", "1"))
    assert str(error.value) == message
