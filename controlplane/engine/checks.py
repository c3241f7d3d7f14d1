"""The small checks definition validation is made of, each giving (field path, description)
pairs: names, expressions, references, retry policies and input schemas."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jmespath.exceptions
import jsonschema
from surefoot.v1 import common_pb2

from controlplane.engine.expressions import compiled_expression

Problems = list[tuple[str, str]]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$")
# Node ids end up in task ids ("<run>:<node>:<attempt>"), so ':' is not allowed.
NODE_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")


def expression_problems(where: str, label: str, source: str) -> Problems:
    if not source:
        return []
    try:
        compiled_expression(source)
    except jmespath.exceptions.JMESPathError as exc:
        message = str(exc).splitlines()[0]
        return [(where, f"{label}: bad expression: {message} (in {source!r})")]
    return []


def reference_problems(
    where: str, label: str, target: str, ids: dict[str, int], what: str
) -> Problems:
    if target and target not in ids:
        return [(where, f"{label}: {what} {target!r} does not exist")]
    return []


def retry_policy_problems(where: str, policy: common_pb2.RetryPolicy) -> Problems:
    """Every way a retry policy (a node's or a worker's declaration) cannot be used."""
    values = (
        policy.initial_interval_seconds,
        policy.max_interval_seconds,
        policy.backoff_coefficient,
        policy.jitter,
    )
    if not all(math.isfinite(v) for v in values):
        # A NaN or infinite delay gives a due time no timestamp column can hold.
        return [(where, "retry values must be finite numbers")]
    problems: Problems = []
    if policy.max_attempts < 0:
        problems.append((f"{where}.max_attempts", "must not be negative"))
    if policy.initial_interval_seconds < 0 or policy.max_interval_seconds < 0:
        problems.append((where, "intervals must not be negative"))
    if policy.backoff_coefficient and policy.backoff_coefficient < 1:
        problems.append((f"{where}.backoff_coefficient", "must be at least 1"))
    if not 0 <= policy.jitter <= 1:
        problems.append((f"{where}.jitter", "must be between 0 and 1"))
    return problems


SCHEMA_FIELD = "definition.input_schema_json"
# Keywords whose subschemas apply to the same value as the schema that holds them: a cycle
# through these alone (and $ref) never reaches a smaller part of the input, so it never ends.
_SAME_VALUE_LISTS = ("allOf", "anyOf", "oneOf")
_SAME_VALUE_ONE = ("not", "if", "then", "else")
_SAME_VALUE_MAPS = ("dependentSchemas", "dependencies")


def schema_problems(text: str, where: str = SCHEMA_FIELD) -> Problems:
    """Every way `text` is not a usable JSON Schema, each reported at `where`."""
    try:
        schema = json.loads(text)
    except ValueError as exc:
        return [(where, f"is not valid JSON: {exc}")]
    except RecursionError:
        return [(where, "nests too deeply")]
    if not isinstance(schema, dict | bool):
        # jsonschema's own lookup of "$schema" fails on anything else (5, "x", [...]).
        return [(where, "is not a JSON Schema: it must be a JSON object (or true/false)")]
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return [(where, f"is not a valid JSON Schema: {exc.message}")]
    except RecursionError:
        return [(where, "nests too deeply")]
    loop = reference_loop(schema)
    if loop is not None:
        return [
            (
                where,
                f"recurses without end: {' -> '.join('#' + p for p in loop)} applies to "
                "the same value again",
            )
        ]
    validator = jsonschema.validators.validator_for(schema)(schema)
    samples: tuple[object, ...] = (None, {}, [], "", 0, True)
    for sample in samples:
        try:
            for _ in validator.iter_errors(sample):
                pass
        except RecursionError:
            return [(where, "recurses without end")]
        except Exception as exc:  # an unresolvable $ref, found now rather than at StartRun
            return [(where, f"cannot be applied: {exc}")]
    return []


def reference_loop(schema: Any) -> list[str] | None:
    """A cycle of subschemas (as JSON pointers) that apply to one value through `$ref` and the
    combining keywords, or None. Only references inside the schema are followed."""
    nodes: dict[str, dict[str, Any]] = {}
    stack: list[tuple[str, Any]] = [("", schema)]
    while stack:
        pointer, value = stack.pop()
        if isinstance(value, dict):
            nodes[pointer] = value
            stack += [(f"{pointer}/{_escape(str(k))}", v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(f"{pointer}/{i}", v) for i, v in enumerate(value)]
    edges = {pointer: _same_value_targets(pointer, node, nodes) for pointer, node in nodes.items()}
    # Iterative depth-first search with colours, so a deep schema cannot overflow the stack.
    state: dict[str, int] = {}
    for root in edges:
        if state.get(root):
            continue
        path = [root]
        iterators = [iter(edges[root])]
        state[root] = 1
        while iterators:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if state.get(following) == 1:
                return path[path.index(following) :] + [following]
            if not state.get(following):
                state[following] = 1
                path.append(following)
                iterators.append(iter(edges[following]))
    return None


def _same_value_targets(
    pointer: str, node: dict[str, Any], nodes: dict[str, dict[str, Any]]
) -> list[str]:
    targets: list[str] = []
    for keyword in ("$ref", "$dynamicRef", "$recursiveRef"):
        ref = node.get(keyword)
        if isinstance(ref, str) and (ref == "#" or ref.startswith("#/")):
            target = ref[1:]
            if target in nodes:
                targets.append(target)
    for keyword in _SAME_VALUE_LISTS:
        found = node.get(keyword)
        if isinstance(found, list):
            targets += [f"{pointer}/{keyword}/{i}" for i in range(len(found))]
    for keyword in _SAME_VALUE_ONE:
        if isinstance(node.get(keyword), dict):
            targets.append(f"{pointer}/{keyword}")
    for keyword in _SAME_VALUE_MAPS:
        found = node.get(keyword)
        if isinstance(found, dict):
            targets += [
                f"{pointer}/{keyword}/{_escape(str(k))}"
                for k, v in found.items()
                if isinstance(v, dict)
            ]
    return [target for target in targets if target in nodes]


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")
