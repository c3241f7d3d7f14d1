"""JMESPath expressions over a run's context, and the timestamps a sleep's `until` gives."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jmespath

_EXPRESSIONS: dict[str, Any] = {}


def compiled_expression(source: str) -> Any:
    """A compiled JMESPath expression; definitions are immutable, so compile each once."""
    found = _EXPRESSIONS.get(source)
    if found is None:
        found = jmespath.compile(source)
        _EXPRESSIONS[source] = found
    return found


def evaluate(source: str, context: dict[str, Any], default: Any = None) -> Any:
    """Evaluate a JMESPath expression over the run context ("" gives `default`)."""
    if not source:
        return default
    return compiled_expression(source).search(context)


def evaluate_shown(source: str, context: dict[str, Any]) -> Any:
    """Evaluate for a human or a routing decision: an error becomes a marked string."""
    try:
        return evaluate(source, context)
    except Exception as exc:  # shown to a human rather than failing the run
        return f"<error: {exc}>"


def truthy(value: Any) -> bool:
    # JMESPath truthiness: false, null, "" , [] and {} are false.
    return value not in (None, False, "", [], {}) and not (
        isinstance(value, str) and value.startswith("<error:")
    )


def parse_timestamp(value: object) -> float | None:
    """An RFC 3339 timestamp (from a sleep's `until`) as epoch seconds, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()
