"""Scoring: whether an output meets an assertion, a case's score, a run's summary.

A judge assertion needs a model call, so it is decided by the caller (runner.py) and handed
in as a function; everything else here is pure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from controlplane.evaluation.eval_set import Assertion

# A judge: (assertion, output) -> None when it held, else why not.
Judge = Callable[[Assertion, Any], str | None]
_MISSING = object()


@dataclass
class CaseResult:
    """One case's outcome, shaped as EvaluationCase."""

    name: str
    node_id: str
    passed: bool
    score: float
    output: Any = None
    validated: bool = False
    failures: list[str] = field(default_factory=list)
    regressed: bool = False
    tokens: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Summary:
    score: float
    passed_cases: int
    regressions: int
    passed: bool


def at_path(value: Any, path: str) -> Any:
    """The value at a dot-separated path of keys and list indexes; _MISSING if none."""
    for part in path.split(".") if path else ():
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def is_subset(expected: Any, actual: Any) -> bool:
    """Whether `expected` is a JSON subset of `actual`: every key of an object with a
    subset value, lists element by element with the same length, scalars equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and is_subset(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(is_subset(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return _same(expected, actual)


def _same(expected: Any, actual: Any) -> bool:
    # JSON has one number type, and true is not 1.
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return bool(expected == actual)


def equal(expected: Any, actual: Any) -> bool:
    return is_subset(expected, actual) and is_subset(actual, expected)


def check(assertion: Assertion, output: Any, judge: Judge) -> str | None:
    """None when `assertion` holds for `output`; otherwise one line saying why not."""
    spec = assertion.spec
    if assertion.kind == "exact":
        return None if equal(spec, output) else f"exact: expected {_short(spec)}"
    if assertion.kind == "subset":
        return None if is_subset(spec, output) else f"subset: {_short(spec)} is not in the output"
    if assertion.kind == "schema":
        errors = sorted(jsonschema.Draft202012Validator(spec).iter_errors(output), key=str)
        return None if not errors else f"schema: {errors[0].message}"
    if assertion.kind == "regex":
        path = spec.get("path", "")
        value = at_path(output, path)
        if not isinstance(value, str):
            return f"regex: {path or 'the output'} is not a string"
        if re.search(spec["pattern"], value) is None:
            return (
                f"regex: {path or 'the output'} {_short(value)} does not match {spec['pattern']!r}"
            )
        return None
    if assertion.kind == "number":
        path = spec.get("path", "")
        value = at_path(output, path)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"number: {path or 'the output'} is not a number"
        tolerance = float(spec.get("tolerance", 0))
        if not math.isclose(value, float(spec["value"]), rel_tol=0.0, abs_tol=tolerance):
            return f"number: {path or 'the output'} is {value}, not {spec['value']} ± {tolerance:g}"
        return None
    return judge(assertion, output)


def score_case(
    name: str,
    node_id: str,
    assertions: Sequence[Assertion],
    output: Any,
    validated: bool,
    judge: Judge,
    failures: Sequence[str] = (),
) -> CaseResult:
    """A case from its node's output: the share of assertions that held."""
    if not validated:
        return CaseResult(name, node_id, False, 0.0, None, False, list(failures))
    found = [line for a in assertions if (line := check(a, output, judge)) is not None]
    held = len(assertions) - len(found)
    score = held / len(assertions) if assertions else 1.0
    return CaseResult(name, node_id, not found, score, output, True, found)


def summarize(
    results: Sequence[CaseResult],
    threshold: float,
    against: Sequence[CaseResult] | None = None,
) -> Summary:
    """The mean score and whether it passes: at least `threshold` and, with `against`, not
    worse than it (no lower a score, and no case that passed there failing here). Marks the
    regressed cases."""
    before = {(r.name, r.node_id): r for r in against or ()}
    for result in results:
        previous = before.get((result.name, result.node_id))
        result.regressed = bool(previous and previous.passed and not result.passed)
    score = sum(r.score for r in results) / len(results) if results else 0.0
    regressions = sum(r.regressed for r in results)
    passed = score >= threshold
    if against is not None:
        against_score = sum(r.score for r in against) / len(against) if against else 0.0
        passed = passed and regressions == 0 and score >= against_score
    return Summary(score, sum(r.passed for r in results), regressions, passed)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
