"""What a model replied: JSON or not, valid against the node's schema or not, and the repair
turn that tells the model what to fix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

# The model needs the first few problems to fix a reply; a list of hundreds helps no one and
# grows every repair turn.
MAX_ERRORS = 10
_NOT_JSON = object()


def schema_validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A draft 2020-12 validator of `schema` (checked at registration, so not here)."""
    return Draft202012Validator(schema)


def reply_errors(content: str, validator: Draft202012Validator) -> tuple[Any, list[str]]:
    """The reply's JSON value and what is wrong with it (nothing when it is valid).

    Returns:
        ``(value, [])`` for a valid reply; ``(None, errors)`` otherwise, each error one line
        naming where it is (``$.priority: 'urgent' is not one of ['low', 'high']``).
    """
    value = _parse(content)
    if value is _NOT_JSON:
        if not content.strip():
            return None, ["the reply is empty, not JSON"]
        return None, [f"the reply is not valid JSON: {_json_problem(content)}"]
    found = sorted(validator.iter_errors(value), key=_order)
    if not found:
        return value, []
    return None, [_describe(error) for error in found[:MAX_ERRORS]]


def repair_message(errors: list[str]) -> str:
    """The user turn sent after an invalid reply."""
    listed = "\n".join(f"- {error}" for error in errors)
    return (
        "Your reply does not satisfy the required JSON Schema. Problems:\n"
        f"{listed}\n"
        "Reply again with only the corrected JSON value, no other text."
    )


def _parse(content: str) -> Any:
    text = content.strip()
    # Models asked for JSON in the prompt alone often fence it as markdown.
    if text.startswith("```") and text.endswith("```"):
        text = text.removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        return json.loads(text)
    except ValueError:
        return _NOT_JSON


def _json_problem(content: str) -> str:
    try:
        json.loads(content)
    except json.JSONDecodeError as exc:
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError as exc:
        return str(exc)
    return "it does not parse"


def _order(error: ValidationError) -> tuple[int, str]:
    return (len(error.absolute_path), _location(error))


def _location(error: ValidationError) -> str:
    location = "$"
    for part in error.absolute_path:
        location += f"[{part}]" if isinstance(part, int) else f".{part}"
    return location


def _describe(error: ValidationError) -> str:
    return f"{_location(error)}: {error.message}"
