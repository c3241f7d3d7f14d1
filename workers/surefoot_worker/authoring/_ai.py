"""The AI node's conveniences in a definition document: JSON written as objects.

An `ai` node's `output_schema_json` and a fallback's `default_output_json` are JSON strings in
the protobuf; a document may write them as objects instead (`output_schema:`,
`default_output:`), as it may write `input_schema:`. Read back, they are objects again
whenever that reproduces the stored string exactly, so that document -> proto -> document
never changes a definition's content hash.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from surefoot.v1 import definition_pb2

from ._document import DefinitionFileError, canonical_json

# (object form, string form) of the JSON fields of an ai node and of its fallbacks.
_NODE_JSON = ("output_schema", "output_schema_json")
_FALLBACK_JSON = ("default_output", "default_output_json")


def _as_string(data: dict[str, Any], names: tuple[str, str], path: str) -> dict[str, Any]:
    short, full = names
    if short not in data:
        return data
    camel = "".join(part.title() if i else part for i, part in enumerate(full.split("_")))
    if full in data or camel in data:
        raise DefinitionFileError(f"{path}.{short}: give {short} or {full}, not both")
    out = {k: v for k, v in data.items() if k != short}
    out[full] = canonical_json(data[short])
    return out


def ai_fields_in(ai: Any, path: str) -> Any:
    """An ai node's document with its JSON objects written as the strings the proto holds."""
    if not isinstance(ai, Mapping):
        return ai  # the document checks report the wrong shape with its path
    out = _as_string(dict(ai), _NODE_JSON, path)
    fallbacks = out.get("fallbacks")
    if isinstance(fallbacks, list):
        out["fallbacks"] = [
            _as_string(dict(f), _FALLBACK_JSON, f"{path}.fallbacks[{i}]")
            if isinstance(f, Mapping)
            else f
            for i, f in enumerate(fallbacks)
        ]
    return out


def documents_in(data: dict[str, Any]) -> dict[str, Any]:
    """The definition document with every ai node's JSON objects written as strings."""
    nodes = data.get("nodes")
    if not isinstance(nodes, list):
        return data
    rewritten = []
    for index, node in enumerate(nodes):
        if isinstance(node, Mapping) and isinstance(node.get("ai"), Mapping):
            node = {**node, "ai": ai_fields_in(node["ai"], f"nodes[{index}].ai")}
        rewritten.append(node)
    return {**data, "nodes": rewritten}


def _as_object(data: dict[str, Any], names: tuple[str, str]) -> dict[str, Any]:
    short, full = names
    text = data.get(full)
    if not isinstance(text, str):
        return data
    try:
        parsed = json.loads(text)
    except ValueError:
        return data
    if canonical_json(parsed) != text:
        return data
    return {(short if k == full else k): (parsed if k == full else v) for k, v in data.items()}


def documents_out(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `documents_in`, where it reproduces the stored strings exactly."""
    for node in data.get("nodes", []):
        ai = node.get("ai")
        if not isinstance(ai, dict):
            continue
        ai = _as_object(ai, _NODE_JSON)
        if isinstance(ai.get("fallbacks"), list):
            ai["fallbacks"] = [_as_object(f, _FALLBACK_JSON) for f in ai["fallbacks"]]
        node["ai"] = ai
    return data


AiFallbackSpec = definition_pb2.AiFallback | Mapping[str, Any]
"""A fallback: the message, or its document form (`{"model": "spare"}`,
`{"default_output": {...}}`, `{"human_review": {"approvers": [...]}}`,
`{"dead_letter": True}`)."""


def fallback_document(fallback: AiFallbackSpec, path: str) -> dict[str, Any]:
    """A fallback in its document form, its default output as the string the proto holds."""
    if isinstance(fallback, definition_pb2.AiFallback):
        return json_format.MessageToDict(fallback, preserving_proto_field_name=True)
    if not isinstance(fallback, Mapping):
        raise DefinitionFileError(f"{path}: a fallback is a mapping or an AiFallback")
    return _as_string(dict(fallback), _FALLBACK_JSON, path)
