"""The checks AI nodes and model connections must pass to be registered.

A node's own fields are checked by its kind (`ai_node_problems`); the connections are the
definition's, so whether each one is named, unique, well formed and used is checked over the
whole definition (`model_problems`).
"""

from __future__ import annotations

import json
import math
import re
from urllib.parse import urlsplit

import jinja2
import jinja2.sandbox
import jsonschema
from surefoot.v1 import definition_pb2

from controlplane.engine.checks import (
    Problems,
    expression_problems,
    reference_problems,
    retry_policy_problems,
    schema_problems,
)

MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
STRUCTURED_OUTPUT = ("", "json_schema", "json_object", "none")
MAX_REPAIRS = 10


def model_problems(proto: definition_pb2.WorkflowDefinition) -> Problems:
    """Connections: unique valid names, http(s) URLs without credentials, each one used."""
    problems: Problems = []
    used = _used_models(proto)
    seen: set[str] = set()
    for index, model in enumerate(proto.models):
        where = f"definition.models[{index}]"
        label = f"model {model.name!r}"
        if not MODEL_NAME.match(model.name):
            problems.append(
                (f"{where}.name", f"{label}: must be 1-64 letters, digits, '_', '.' or '-'")
            )
        elif model.name in seen:
            problems.append((f"{where}.name", f"{label}: the name is used twice"))
        seen.add(model.name)
        problems += _url_problems(f"{where}.base_url", label, model.base_url)
        if not model.model:
            problems.append((f"{where}.model", f"{label}: the endpoint's model is required"))
        if model.structured_output not in STRUCTURED_OUTPUT:
            problems.append(
                (
                    f"{where}.structured_output",
                    f"{label}: must be json_schema, json_object or none",
                )
            )
        prices = (model.input_price_per_million, model.output_price_per_million)
        if not all(math.isfinite(p) and p >= 0 for p in prices):
            problems.append((where, f"{label}: prices must be finite numbers >= 0"))
        if model.name and model.name not in used:
            problems.append((f"{where}.name", f"{label}: no ai node uses it"))
    for node_index, node in enumerate(proto.nodes):
        if node.WhichOneof("kind") != "ai":
            continue
        for where, name in _named_models(f"definition.nodes[{node_index}].ai", node.ai):
            if name and name not in seen:
                problems.append((where, f"node {node.id!r}: model {name!r} is not in models"))
    return problems


def _used_models(proto: definition_pb2.WorkflowDefinition) -> set[str]:
    return {
        name
        for node in proto.nodes
        if node.WhichOneof("kind") == "ai"
        for _, name in _named_models("", node.ai)
    }


def _named_models(where: str, ai: definition_pb2.AiNode) -> list[tuple[str, str]]:
    named = [(f"{where}.model", ai.model)]
    for index, fallback in enumerate(ai.fallbacks):
        if fallback.WhichOneof("kind") == "model":
            named.append((f"{where}.fallbacks[{index}].model", fallback.model))
    return named


def _url_problems(where: str, label: str, url: str) -> Problems:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as exc:
        return [(where, f"{label}: not a URL: {exc}")]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [(where, f"{label}: must be an http or https URL with a host")]
    if parts.username or parts.password:
        # A key belongs in a secret (api_key_secret), never in a definition anyone can read.
        return [(where, f"{label}: must not carry credentials; use api_key_secret")]
    return []


def ai_node_problems(
    where: str, label: str, node: definition_pb2.Node, ids: dict[str, int]
) -> Problems:
    ai = node.ai
    where = f"{where}.ai"
    problems: Problems = expression_problems(f"{where}.input", label, ai.input)
    if not ai.user_prompt:
        problems.append((f"{where}.user_prompt", f"{label}: the user prompt is required"))
    for field in ("system_prompt", "user_prompt"):
        problems += _template_problems(f"{where}.{field}", label, getattr(ai, field))
    if not ai.model:
        problems.append((f"{where}.model", f"{label}: names no model connection"))
    schema_ok = False
    if not ai.output_schema_json:
        problems.append((f"{where}.output_schema_json", f"{label}: an output schema is required"))
    else:
        found = schema_problems(ai.output_schema_json, f"{where}.output_schema_json")
        found = found or _draft_2020_problems(ai.output_schema_json, f"{where}.output_schema_json")
        problems += [(field, f"{label}: {message}") for field, message in found]
        schema_ok = not found
    problems += _fallback_problems(where, label, ai, schema_ok)
    if not 0 <= ai.max_repairs <= MAX_REPAIRS:
        problems.append((f"{where}.max_repairs", f"{label}: must be between 0 and {MAX_REPAIRS}"))
    if ai.max_tokens < 0:
        problems.append((f"{where}.max_tokens", f"{label}: must be >= 0"))
    for field in ("temperature", "timeout_seconds", "max_run_cost"):
        value = getattr(ai, field)
        if not (math.isfinite(value) and value >= 0):
            problems.append((f"{where}.{field}", f"{label}: must be a finite number >= 0"))
    if ai.max_run_tokens < 0:
        problems.append((f"{where}.max_run_tokens", f"{label}: must be >= 0"))
    if ai.HasField("retry"):
        problems += [
            (field, f"{label}: {message}")
            for field, message in retry_policy_problems(f"{where}.retry", ai.retry)
        ]
    problems += reference_problems(
        f"{where}.on_failure_next", label, ai.on_failure_next, ids, "fallback node"
    )
    if ai.on_failure == definition_pb2.FAILURE_POLICY_COMPENSATE and ai.on_failure_next:
        problems.append(
            (f"{where}.on_failure_next", f"{label}: a fallback node and compensate exclude")
        )
    return problems


def _draft_2020_problems(text: str, where: str) -> Problems:
    """Replies are validated with draft 2020-12 whatever `$schema` says: the schema must be
    one of that draft."""
    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(text))
    except jsonschema.SchemaError as exc:
        return [(where, f"is not a valid draft 2020-12 JSON Schema: {exc.message}")]
    return []


def _template_problems(where: str, label: str, source: str) -> Problems:
    try:
        jinja2.sandbox.SandboxedEnvironment().parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return [(where, f"{label}: not a Jinja2 template: {exc.message} (line {exc.lineno})")]
    return []


def _fallback_problems(
    where: str, label: str, ai: definition_pb2.AiNode, schema_ok: bool
) -> Problems:
    """Model fallbacks first, then at most one final fallback, last."""
    problems: Problems = []
    final_at: int | None = None
    for index, fallback in enumerate(ai.fallbacks):
        at = f"{where}.fallbacks[{index}]"
        which = fallback.WhichOneof("kind")
        if which is None:
            problems.append((at, f"{label}: a fallback needs a kind"))
            continue
        if final_at is not None:
            problems.append(
                (
                    at,
                    f"{label}: nothing may follow fallbacks[{final_at}] "
                    "(a default output, human review or dead letter is the last fallback)",
                )
            )
        if which == "model":
            if not fallback.model:
                problems.append((f"{at}.model", f"{label}: names no model connection"))
            continue
        final_at = index if final_at is None else final_at
        if which == "default_output_json" and schema_ok:
            problems += _default_problems(f"{at}.default_output_json", label, ai, fallback)
        elif which == "human_review":
            review = fallback.human_review
            if not (math.isfinite(review.timeout_seconds) and review.timeout_seconds >= 0):
                problems.append(
                    (f"{at}.human_review.timeout_seconds", f"{label}: must be a number >= 0")
                )
        elif which == "dead_letter" and not fallback.dead_letter:
            problems.append((f"{at}.dead_letter", f"{label}: set it to true"))
    return problems


def _default_problems(
    where: str, label: str, ai: definition_pb2.AiNode, fallback: definition_pb2.AiFallback
) -> Problems:
    try:
        value = json.loads(fallback.default_output_json)
    except ValueError as exc:
        return [(where, f"{label}: is not valid JSON: {exc}")]
    schema = json.loads(ai.output_schema_json)
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value)
    )
    if error is not None:
        at = "/" + "/".join(str(part) for part in error.absolute_path)
        return [(where, f"{label}: does not match the output schema at {at}: {error.message}")]
    return []
