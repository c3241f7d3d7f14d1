"""validate_definition: every problem of a definition at once, each naming where it is.

A client fixes a definition from these messages alone, so each test checks the field path and
that the description names the node, not only that something was refused.
"""

from __future__ import annotations

import pytest
from surefoot.v1 import common_pb2, definition_pb2

from controlplane.engine.definition import StepDeclaration, validate_definition
from controlplane.engine.retry import RetryPolicy
from tests.engine.workflow_builders import (
    NO_STEP_TYPES,
    catalog_of,
    retry_policy,
    task_node,
    workflow,
)

Problems = list[tuple[str, str]]


def fields(problems: Problems) -> list[str]:
    return [field for field, _ in problems]


def orders() -> definition_pb2.WorkflowDefinition:
    return workflow(
        task_node("reserve", next="charge", step_type="reserve-stock"),
        task_node("charge", next="ship", input="{amount: input.amount}"),
        task_node("ship", step_type="ship-parcel", input="steps.reserve.output"),
    )


def test_a_valid_definition_has_no_problems() -> None:
    assert validate_definition(orders(), NO_STEP_TYPES) == []


def test_a_definition_with_a_fallback_and_explicit_start_is_valid() -> None:
    proto = workflow(
        task_node("refund"),
        task_node("charge", next="ship", on_failure_next="refund"),
        task_node("ship"),
        start="charge",
    )
    assert validate_definition(proto, NO_STEP_TYPES) == []


def test_a_fallback_loop_with_an_exit_is_valid() -> None:
    # charge -> ship ends; a failed ship goes back to charge: a cycle, but one that can end.
    proto = workflow(
        task_node("charge", next="ship"),
        task_node("ship", on_failure_next="charge"),
    )
    assert validate_definition(proto, NO_STEP_TYPES) == []


def test_every_local_problem_is_reported_at_once() -> None:
    bad_retry = retry_policy(max_attempts=-1, backoff=0.5, jitter=2)
    proto = definition_pb2.WorkflowDefinition(
        name="bad name!",
        version="",
        nodes=[
            task_node("reserve", next="nowhere"),
            task_node("charge", input="steps.[", retry=bad_retry),
            task_node("charge"),
            task_node("a:b"),
            task_node("ship", step_type="ship-parcel", idempotency=""),
        ],
    )

    problems = validate_definition(proto, NO_STEP_TYPES)

    assert sorted(fields(problems)) == sorted(
        [
            "definition.name",
            "definition.version",
            "definition.nodes[0].next",
            "definition.nodes[1].task.input",
            "definition.nodes[1].task.retry.max_attempts",
            "definition.nodes[1].task.retry.backoff_coefficient",
            "definition.nodes[1].task.retry.jitter",
            "definition.nodes[2].id",
            "definition.nodes[3].id",
            "definition.nodes[4].task.idempotency",
        ]
    )


def test_an_unknown_next_node_names_both_nodes() -> None:
    proto = workflow(task_node("reserve", next="charge"))
    assert validate_definition(proto, NO_STEP_TYPES) == [
        ("definition.nodes[0].next", "node 'reserve': next node 'charge' does not exist")
    ]


def test_an_unknown_fallback_and_start_are_reported() -> None:
    proto = workflow(task_node("charge", on_failure_next="refund"), start="begin")
    problems = validate_definition(proto, NO_STEP_TYPES)
    assert fields(problems) == ["definition.nodes[0].task.on_failure_next", "definition.start"]
    assert "'refund'" in problems[0][1]
    assert "'begin'" in problems[1][1]


def test_an_unreachable_node_is_reported_with_its_id() -> None:
    proto = workflow(task_node("reserve"), task_node("orphan", next="reserve"))
    assert validate_definition(proto, NO_STEP_TYPES) == [
        ("definition.nodes[1]", "node 'orphan' is unreachable from 'reserve'")
    ]


def test_an_unreachable_node_is_reported_together_with_other_problems() -> None:
    """The brief: every problem at once. A client that fixes the bad expression must not
    learn about the orphan only on its second try."""
    proto = workflow(
        task_node("reserve", input="steps.["),
        task_node("orphan", next="reserve"),
    )
    problems = validate_definition(proto, NO_STEP_TYPES)
    assert fields(problems) == ["definition.nodes[0].task.input", "definition.nodes[1]"]


def test_a_cycle_without_exit_names_every_node_in_it() -> None:
    proto = workflow(
        task_node("reserve", next="charge"),
        task_node("charge", next="ship"),
        task_node("ship", next="charge"),
    )
    problems = validate_definition(proto, NO_STEP_TYPES)
    assert fields(problems) == [
        "definition.nodes[0]",
        "definition.nodes[1]",
        "definition.nodes[2]",
    ]
    for (_, description), node in zip(problems, ["reserve", "charge", "ship"], strict=True):
        assert f"node {node!r}" in description
        assert "cycle without exit" in description


def test_a_node_that_follows_itself_is_refused() -> None:
    proto = workflow(task_node("poll", next="poll"))
    assert validate_definition(proto, NO_STEP_TYPES) == [
        ("definition.nodes[0].next", "node 'poll': a node cannot follow itself")
    ]


def test_duplicate_node_ids_point_at_the_second_use() -> None:
    proto = workflow(task_node("charge"), task_node("charge"))
    assert validate_definition(proto, NO_STEP_TYPES) == [
        ("definition.nodes[1].id", "node id 'charge' is used twice")
    ]


@pytest.mark.parametrize("node_id", ["1st", "a:b", "with space", "x" * 101, "é"])
def test_bad_node_ids_are_refused(node_id: str) -> None:
    proto = workflow(task_node(node_id))
    problems = validate_definition(proto, NO_STEP_TYPES)
    assert fields(problems) == ["definition.nodes[0].id"]
    assert repr(node_id) in problems[0][1]


def test_an_empty_node_id_is_one_problem_not_two() -> None:
    """An empty id must not also read as "follows itself" (next is empty too)."""
    proto = workflow(task_node(""))
    assert validate_definition(proto, NO_STEP_TYPES) == [
        ("definition.nodes[0].id", "node id '' must be letters, digits, '_' or '-'")
    ]


@pytest.mark.parametrize("node_id", ["a", "_private", "charge-card_2", "x" * 100])
def test_good_node_ids_are_accepted(node_id: str) -> None:
    assert validate_definition(workflow(task_node(node_id)), NO_STEP_TYPES) == []


def test_a_bad_jmespath_expression_names_the_node() -> None:
    proto = workflow(task_node("reserve", next="charge"), task_node("charge", input="input.[x"))
    [(field, description)] = validate_definition(proto, NO_STEP_TYPES)
    assert field == "definition.nodes[1].task.input"
    assert "node 'charge'" in description
    assert "expression" in description
    # One line: the parser's caret drawing would make a gRPC status message unreadable.
    assert "\n" not in description


def test_a_step_without_idempotency_and_no_registration_is_refused() -> None:
    proto = workflow(task_node("charge", step_type="charge-card", idempotency=""))
    [(field, description)] = validate_definition(proto, NO_STEP_TYPES)
    assert field == "definition.nodes[0].task.idempotency"
    assert "node 'charge'" in description
    assert "'charge-card'" in description


def test_a_registered_step_type_declaration_is_enough() -> None:
    catalog = catalog_of({"charge-card": StepDeclaration("key", RetryPolicy())})
    proto = workflow(task_node("charge", step_type="charge-card", idempotency=""))
    assert validate_definition(proto, catalog) == []


def test_the_catalog_is_asked_for_the_pinned_step_version() -> None:
    asked: list[tuple[str, str]] = []

    def catalog(name: str, version: str) -> StepDeclaration | None:
        asked.append((name, version))
        return StepDeclaration("key", RetryPolicy()) if version == "2" else None

    pinned = workflow(task_node("charge", step_version="2", idempotency=""))
    other = workflow(task_node("charge", step_version="3", idempotency=""))
    assert validate_definition(pinned, catalog) == []
    assert fields(validate_definition(other, catalog)) == ["definition.nodes[0].task.idempotency"]
    assert ("charge-card", "2") in asked


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        (common_pb2.RetryPolicy(max_attempts=-1), "max_attempts"),
        (common_pb2.RetryPolicy(initial_interval_seconds=-1), ""),
        (common_pb2.RetryPolicy(max_interval_seconds=-0.5), ""),
        (common_pb2.RetryPolicy(backoff_coefficient=0.9), "backoff_coefficient"),
        (common_pb2.RetryPolicy(jitter=-0.1), "jitter"),
        (common_pb2.RetryPolicy(jitter=1.5), "jitter"),
    ],
)
def test_bad_retry_values_are_refused(retry: common_pb2.RetryPolicy, field: str) -> None:
    proto = workflow(task_node("reserve", next="charge"), task_node("charge", retry=retry))
    [(where, description)] = validate_definition(proto, NO_STEP_TYPES)
    assert where == "definition.nodes[1].task.retry" + (f".{field}" if field else "")
    assert description.startswith("node 'charge': ")


@pytest.mark.parametrize(
    "retry",
    [
        common_pb2.RetryPolicy(initial_interval_seconds=float("nan")),
        common_pb2.RetryPolicy(max_interval_seconds=float("nan")),
        common_pb2.RetryPolicy(backoff_coefficient=float("nan")),
        common_pb2.RetryPolicy(initial_interval_seconds=1e308, max_interval_seconds=float("inf")),
    ],
    ids=["initial nan", "max nan", "backoff nan", "unbounded"],
)
def test_non_finite_retry_values_are_refused(retry: common_pb2.RetryPolicy) -> None:
    """A NaN or infinite delay makes the retry's due time NaN or infinite, which no timestamp
    column can hold: recording the step's first failure would raise in the store."""
    proto = workflow(task_node("charge", retry=retry))
    assert fields(validate_definition(proto, NO_STEP_TYPES))


@pytest.mark.parametrize("timeout", [float("nan"), float("inf")])
def test_non_finite_timeouts_are_refused(timeout: float) -> None:
    """The store writes int(timeout_seconds): NaN or infinity raises there, for every run."""
    proto = workflow(task_node("charge", timeout_seconds=timeout))
    assert fields(validate_definition(proto, NO_STEP_TYPES)) == [
        "definition.nodes[0].task.timeout_seconds"
    ]


def test_good_retry_values_are_accepted() -> None:
    retry = retry_policy(max_attempts=10, initial=0.5, backoff=1, max_interval=3600, jitter=1)
    assert validate_definition(workflow(task_node("charge", retry=retry)), NO_STEP_TYPES) == []


def test_a_negative_timeout_is_refused() -> None:
    proto = workflow(task_node("charge", timeout_seconds=-1))
    assert fields(validate_definition(proto, NO_STEP_TYPES)) == [
        "definition.nodes[0].task.timeout_seconds"
    ]


@pytest.mark.parametrize("name", ["", "has space", "-leading-dash", "x" * 201, "a/b"])
def test_bad_workflow_names_are_refused(name: str) -> None:
    proto = workflow(task_node("charge"), name=name)
    assert fields(validate_definition(proto, NO_STEP_TYPES)) == ["definition.name"]


@pytest.mark.parametrize("version", ["", "1 beta", "+1", "v" * 101, "1/2"])
def test_bad_versions_are_refused(version: str) -> None:
    proto = workflow(task_node("charge"), version=version)
    assert fields(validate_definition(proto, NO_STEP_TYPES)) == ["definition.version"]


@pytest.mark.parametrize(
    ("name", "version"), [("orders", "1.3.0+build-7"), ("a" * 200, "2026-11-01")]
)
def test_good_names_and_versions_are_accepted(name: str, version: str) -> None:
    proto = workflow(task_node("charge"), name=name, version=version)
    assert validate_definition(proto, NO_STEP_TYPES) == []


def test_a_definition_without_nodes_is_refused() -> None:
    proto = definition_pb2.WorkflowDefinition(name="orders", version="1")
    assert fields(validate_definition(proto, NO_STEP_TYPES)) == ["definition.nodes"]


def test_a_node_without_a_kind_is_refused() -> None:
    proto = workflow(definition_pb2.Node(id="mystery"))
    problems = validate_definition(proto, NO_STEP_TYPES)
    assert fields(problems) == ["definition.nodes[0].kind"]
    assert "'mystery'" in problems[0][1]
