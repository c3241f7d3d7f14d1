"""The eval set's format and the scoring of assertions: pure functions, no server."""

from __future__ import annotations

from typing import Any

import pytest
from surefoot_worker.authoring import definition_from_dict

from controlplane.evaluation import EvalSetInvalid, parse_eval_set, summarize
from controlplane.evaluation.eval_set import Assertion
from controlplane.evaluation.scoring import CaseResult, check, is_subset, score_case

SCHEMA = '{"type": "object", "required": ["category"]}'


def definition(*ai_ids: str) -> Any:
    nodes: list[dict[str, Any]] = [
        {
            "id": node_id,
            "ai": {"user_prompt": "{{ input }}", "model": "main", "output_schema_json": SCHEMA},
        }
        for node_id in ai_ids
    ]
    for node, following in zip(nodes, nodes[1:], strict=False):
        node["next"] = following["id"]
    return definition_from_dict(
        {
            "name": "support",
            "version": "1",
            "models": [{"name": "main", "base_url": "http://127.0.0.1:9/v1", "model": "m"}],
            "nodes": nodes,
        }
    )


def no_judge(assertion: Assertion, output: Any) -> str | None:
    raise AssertionError("no judge in these cases")


def test_a_set_parses_with_the_node_implied_when_the_version_has_one() -> None:
    text = """
threshold: 0.5
cases:
  - name: refund
    input: {ticket: money back}
    assertions:
      - subset: {category: refund}
      - regex: {path: reason, pattern: "(?i)refund"}
      - number: {path: confidence, value: 0.9, tolerance: 0.1}
      - judge: {prompt: "fair? {{ input.output }}"}
"""
    parsed = parse_eval_set(text, definition("classify"))
    assert parsed.threshold == 0.5
    (case,) = parsed.cases
    assert (case.name, case.node, case.input) == ("refund", "classify", {"ticket": "money back"})
    assert [a.kind for a in case.assertions] == ["subset", "regex", "number", "judge"]
    assert len(parsed.content_hash) == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- not a mapping", "must be a mapping"),
        ("cases: []", "cases: must be a non-empty list"),
        ("threshold: 2\ncases: [{name: a, input: 1}]", "threshold: must be from 0 to 1"),
        ("cases: [{name: a}]", "cases[0].input: is required"),
        ("cases: [{name: a, input: 1}, {name: a, input: 2}]", "'a' is used twice"),
        ("cases: [{name: a, node: route, input: 1}]", "'route' is not an ai node"),
        ("cases: [{name: a, input: 1, assertions: [{fuzzy: 1}]}]", "unknown kind 'fuzzy'"),
        ("cases: [{name: a, input: 1, assertions: [{regex: {pattern: '('}}]}]", "does not compile"),
        (
            "cases: [{name: a, input: 1, assertions: [{judge: {prompt: x, model: nope}}]}]",
            "'nope' is not a model",
        ),
        ("cases: [{name: a, input: 1, assertions: [{schema: {type: 12}}]}]", "not a JSON Schema"),
        ("{cases: [", "is not YAML or JSON"),
    ],
)
def test_a_bad_set_is_refused_naming_where(text: str, message: str) -> None:
    with pytest.raises(EvalSetInvalid, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_eval_set(text, definition("classify"))


def test_the_node_is_required_when_the_version_has_several() -> None:
    with pytest.raises(EvalSetInvalid, match="node: is required: the version has 2 ai nodes"):
        parse_eval_set("cases: [{name: a, input: 1}]", definition("first", "second"))


@pytest.mark.parametrize(
    ("kind", "spec", "output", "holds"),
    [
        ("exact", {"a": 1}, {"a": 1}, True),
        ("exact", {"a": 1}, {"a": 1, "b": 2}, False),
        ("exact", {"a": 1}, {"a": True}, False),
        ("subset", {"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 3}, "d": 4}, True),
        ("subset", {"a": [1]}, {"a": [1, 2]}, False),
        ("regex", {"path": "items.1.sku", "pattern": "^X-"}, {"items": [{}, {"sku": "X-1"}]}, True),
        ("regex", {"path": "missing", "pattern": "."}, {"a": "b"}, False),
        ("number", {"path": "p", "value": 0.9, "tolerance": 0.05}, {"p": 0.93}, True),
        ("number", {"path": "p", "value": 0.9, "tolerance": 0.05}, {"p": 0.8}, False),
        ("number", {"path": "p", "value": 1}, {"p": True}, False),
        ("schema", {"type": "object", "required": ["x"]}, {"x": 1}, True),
        ("schema", {"type": "object", "required": ["x"]}, {"y": 1}, False),
    ],
)
def test_each_assertion_kind(kind: str, spec: Any, output: Any, holds: bool) -> None:
    failure = check(Assertion(kind, spec), output, no_judge)
    assert (failure is None) is holds, failure


def test_a_case_scores_the_share_of_assertions_that_held() -> None:
    assertions = [Assertion("subset", {"a": 1}), Assertion("exact", {"a": 2})]
    result = score_case("c", "n", assertions, {"a": 1}, True, no_judge)
    assert (result.passed, result.score) == (False, 0.5)
    assert result.failures == ['exact: expected {"a": 2}']
    unvalidated = score_case("c", "n", assertions, None, False, no_judge, ["AiOutputInvalid: x"])
    assert (unvalidated.passed, unvalidated.score, unvalidated.failures) == (
        False,
        0.0,
        ["AiOutputInvalid: x"],
    )


def test_a_case_that_passed_before_and_fails_now_is_a_regression_and_fails_the_set() -> None:
    before = [CaseResult("a", "n", True, 1.0), CaseResult("b", "n", False, 0.0)]
    now = [CaseResult("a", "n", False, 0.5), CaseResult("b", "n", True, 1.0)]
    summary = summarize(now, 0.5, before)
    assert (summary.score, summary.regressions, summary.passed) == (0.75, 1, False)
    assert [r.regressed for r in now] == [True, False]
    assert summarize(now, 0.5).passed is True
    assert summarize(now, 0.8).passed is False


def test_subset_keeps_json_types_apart() -> None:
    assert not is_subset(1, True)
    assert is_subset(1, 1.0)
