"""The eval set of a definition version: what `surefoot eval` runs and how it scores.

An eval set is a YAML (or JSON, which is YAML) document kept beside the definition file
(`support.yaml` -> `support.eval.yaml`) and attached to the version at registration:

    threshold: 0.8            # 0 to 1: the mean case score a version needs; default 1
    cases:
      - name: refund-request  # unique in the set
        node: classify        # the AiNode; optional when the version has exactly one
        input:                # the node's input value (what AiNode.input would give)
          ticket: "I want my money back"
        assertions:           # none: the case passes when a reply validates at all
          - exact: {category: refund, urgent: false}     # the output equals this
          - subset: {category: refund}                   # this is a JSON subset of it
          - regex: {path: reason, pattern: "(?i)refund"} # the value at path matches
          - schema: {type: object, required: [reason]}   # JSON Schema 2020-12 holds
          - number: {path: confidence, value: 0.9, tolerance: 0.1}
          - judge:                                       # a model grades the output
              model: grader     # a ModelConnection of the definition; default: the node's
              prompt: "Is {{ input.output.reason }} a fair reason for {{ input.input }}?"

A path is dot-separated keys and list indexes (`items.0.sku`); an empty path is the whole
output. A judge's prompt is a sandboxed Jinja2 template whose `input` is {"input": the
case's input, "output": the node's output}; the judge must reply {"pass": bool, "reason":
str}. A case's score is the share of its assertions that held (0 when no reply validated);
the set's score is the mean of its cases'.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml
from surefoot.v1 import definition_pb2

# PutEvalSetRequest.eval_set's limit.
MAX_EVAL_SET_BYTES = 1024 * 1024
KINDS = ("exact", "subset", "regex", "schema", "number", "judge")


class EvalSetInvalid(ValueError):
    """The text is not an eval set of the version; the message says where and why."""


@dataclass(frozen=True)
class Assertion:
    kind: str
    # exact / subset: the expected JSON; schema: the schema; the others: their mapping.
    spec: Any


@dataclass(frozen=True)
class Case:
    name: str
    node: str
    input: Any
    assertions: tuple[Assertion, ...] = ()


@dataclass(frozen=True)
class EvalSet:
    threshold: float
    cases: tuple[Case, ...]
    content_hash: str = ""
    text: str = field(default="", repr=False)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ai_nodes(definition: definition_pb2.WorkflowDefinition) -> dict[str, definition_pb2.AiNode]:
    """The definition's AiNodes by id, in definition order."""
    return {n.id: n.ai for n in definition.nodes if n.WhichOneof("kind") == "ai"}


def parse_eval_set(text: str, definition: definition_pb2.WorkflowDefinition) -> EvalSet:
    """The eval set in `text`, checked against `definition`'s AiNodes and connections.

    Raises:
        EvalSetInvalid: it does not parse, or names a node or connection the version lacks.
    """
    if len(text.encode()) > MAX_EVAL_SET_BYTES:
        raise EvalSetInvalid(f"is larger than {MAX_EVAL_SET_BYTES} bytes")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvalSetInvalid(f"is not YAML or JSON: {_first_line(exc)}") from None
    if not isinstance(document, dict):
        raise EvalSetInvalid("must be a mapping with `cases` (and `threshold`)")
    unknown = set(document) - {"threshold", "cases"}
    if unknown:
        raise EvalSetInvalid(f"unknown key {sorted(unknown)[0]!r} (threshold, cases)")
    threshold = document.get("threshold", 1.0)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise EvalSetInvalid("threshold: must be a number from 0 to 1")
    if not 0.0 <= float(threshold) <= 1.0:
        raise EvalSetInvalid("threshold: must be from 0 to 1")
    raw_cases = document.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise EvalSetInvalid("cases: must be a non-empty list")
    nodes = ai_nodes(definition)
    if not nodes:
        label = f"{definition.name}@{definition.version}"
        raise EvalSetInvalid(f"{label} has no ai node to evaluate")
    connections = {m.name for m in definition.models}
    cases: list[Case] = []
    for index, raw in enumerate(raw_cases):
        case = _case(f"cases[{index}]", raw, nodes, connections)
        if any(c.name == case.name for c in cases):
            raise EvalSetInvalid(f"cases[{index}].name: {case.name!r} is used twice")
        cases.append(case)
    return EvalSet(float(threshold), tuple(cases), text_hash(text), text)


def _case(
    where: str, raw: Any, nodes: dict[str, definition_pb2.AiNode], connections: set[str]
) -> Case:
    if not isinstance(raw, dict):
        raise EvalSetInvalid(f"{where}: must be a mapping")
    unknown = set(raw) - {"name", "node", "input", "assertions"}
    if unknown:
        raise EvalSetInvalid(f"{where}: unknown key {sorted(unknown)[0]!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise EvalSetInvalid(f"{where}.name: is required")
    node = raw.get("node", "")
    if not node:
        if len(nodes) != 1:
            raise EvalSetInvalid(
                f"{where}.node: is required: the version has {len(nodes)} ai nodes "
                f"({', '.join(nodes)})"
            )
        node = next(iter(nodes))
    if node not in nodes:
        raise EvalSetInvalid(f"{where}.node: {node!r} is not an ai node of the version")
    if "input" not in raw:
        raise EvalSetInvalid(f"{where}.input: is required (the node's input value)")
    raw_assertions = raw.get("assertions") or []
    if not isinstance(raw_assertions, list):
        raise EvalSetInvalid(f"{where}.assertions: must be a list")
    assertions = tuple(
        _assertion(f"{where}.assertions[{i}]", a, connections) for i, a in enumerate(raw_assertions)
    )
    return Case(name, node, raw["input"], assertions)


def _assertion(where: str, raw: Any, connections: set[str]) -> Assertion:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise EvalSetInvalid(f"{where}: must be a mapping of one kind ({', '.join(KINDS)})")
    ((kind, spec),) = raw.items()
    if kind not in KINDS:
        raise EvalSetInvalid(f"{where}: unknown kind {kind!r} ({', '.join(KINDS)})")
    where = f"{where}.{kind}"
    if kind == "regex":
        _require(where, spec, {"pattern"}, {"path"})
        try:
            re.compile(spec["pattern"])
        except (re.error, TypeError) as exc:
            raise EvalSetInvalid(f"{where}.pattern: does not compile: {exc}") from None
    elif kind == "number":
        _require(where, spec, {"value"}, {"path", "tolerance"})
        for key in ("value", "tolerance"):
            value = spec.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise EvalSetInvalid(f"{where}.{key}: must be a number")
    elif kind == "schema":
        try:
            jsonschema.Draft202012Validator.check_schema(spec)
        except jsonschema.SchemaError as exc:
            raise EvalSetInvalid(f"{where}: is not a JSON Schema: {exc.message}") from None
    elif kind == "judge":
        _require(where, spec, {"prompt"}, {"model"})
        if not isinstance(spec["prompt"], str) or not spec["prompt"].strip():
            raise EvalSetInvalid(f"{where}.prompt: must be a non-empty template")
        model = spec.get("model", "")
        if model and model not in connections:
            raise EvalSetInvalid(f"{where}.model: {model!r} is not a model of the version")
    if kind in ("regex", "number") and not isinstance(spec.get("path", ""), str):
        raise EvalSetInvalid(f"{where}.path: must be a string")
    # Round-tripped through JSON: what YAML alone can hold (dates, sets) cannot be compared.
    try:
        json.dumps(spec)
    except (TypeError, ValueError):
        raise EvalSetInvalid(f"{where}: must be plain JSON values") from None
    return Assertion(kind, spec)


def _require(where: str, spec: Any, required: set[str], optional: set[str]) -> None:
    if not isinstance(spec, dict):
        raise EvalSetInvalid(f"{where}: must be a mapping")
    missing = required - set(spec)
    if missing:
        raise EvalSetInvalid(f"{where}.{sorted(missing)[0]}: is required")
    unknown = set(spec) - required - optional
    if unknown:
        raise EvalSetInvalid(f"{where}: unknown key {sorted(unknown)[0]!r}")


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]
