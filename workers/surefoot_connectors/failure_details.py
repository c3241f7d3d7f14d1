"""A connector failure's facts (an AI call's replies and errors) as the attempt's details.

The SDK sends the traceback of a step's exception as the attempt's error details and keeps
its last 8 KB. A connector with facts to report adds them as the exception's note, which
the traceback ends with: one line of JSON, kept short enough to survive the cut. The
control plane (and anyone reading history) takes them back with :func:`parse_details`.
"""

from __future__ import annotations

import json
from typing import Any

# Well under the SDK's 8 KB of traceback, so that the line survives whole.
MAX_DETAILS_BYTES = 6 * 1024
# How much of a reply is kept when the details must be cut.
_SHORT_TEXT = 300


def details_line(details: dict[str, Any]) -> str:
    """`details` as one line of JSON of at most MAX_DETAILS_BYTES (UTF-8).

    Too long, it is shortened in steps that keep the most useful facts longest: the prompts
    go first (their hashes stay), then the earlier calls' replies are cut, then only the
    last calls are kept, then the last reply is cut.
    """
    for shorten in _SHORTENINGS:
        details = shorten(details)
        line = _dumps(details)
        if len(line.encode("utf-8")) <= MAX_DETAILS_BYTES:
            return line
    return _dumps({"truncated": True, "errors": list(details.get("errors", []))[:3]})


def parse_details(text: str) -> dict[str, Any] | None:
    """The JSON object that ends an attempt's details, or None when there is none."""
    last = text.rstrip("\n").rsplit("\n", 1)[-1].strip()
    if not last.startswith("{"):
        return None
    try:
        value = json.loads(last)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _dumps(value: Any) -> str:
    # ensure_ascii: a reply's line breaks and control characters stay escaped, so one line.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _as_is(details: dict[str, Any]) -> dict[str, Any]:
    return details


def _without_prompts(details: dict[str, Any]) -> dict[str, Any]:
    calls = [{**call, "prompt": None} for call in details.get("calls", [])]
    return {**details, "calls": calls, "truncated": True}


def _short_earlier_replies(details: dict[str, Any]) -> dict[str, Any]:
    calls = list(details.get("calls", []))
    cut = [{**call, "raw_reply": _cut(call.get("raw_reply", ""))} for call in calls[:-1]]
    return {**details, "calls": cut + calls[-1:]}


def _last_calls(details: dict[str, Any]) -> dict[str, Any]:
    return {**details, "calls": list(details.get("calls", []))[-3:]}


def _short_everything(details: dict[str, Any]) -> dict[str, Any]:
    calls = [
        {**call, "raw_reply": _cut(call.get("raw_reply", "")), "errors": call.get("errors", [])[:3]}
        for call in details.get("calls", [])[-2:]
    ]
    shortened = {**details, "calls": calls, "errors": list(details.get("errors", []))[:3]}
    if "last_reply" in details:
        shortened["last_reply"] = _cut(str(details["last_reply"]), 2000)
    return shortened


def _cut(text: str, limit: int = _SHORT_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


_SHORTENINGS = (_as_is, _without_prompts, _short_earlier_replies, _last_calls, _short_everything)
