"""What the console says about an `ai` step, read from its history: each model call's prompt,
raw reply, validation errors and repair number, with tokens, latency and cost, and how the
step ended (a model's reply, a fallback model's, the default, or a person's review).

The engine keeps the connector's result under data["ai"] of the step's completion event and
the failure details (the calls made so far, the last raw reply) under data["ai"] of a failed
attempt and of the dead-lettering; a human review's decision is data["ai"] with source
"human_review". Pure functions of history events, so the Run screen and the tests share them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from surefoot.v1 import run_pb2

from console.trace import event_data

# Event types whose data["ai"] repeats calls an earlier event of the same attempt recorded.
_REPEATS = {"EVENT_TYPE_STEP_DEAD_LETTERED"}


def _kind(event: run_pb2.HistoryEvent) -> str:
    return run_pb2.EventType.Name(event.type)


def ai_records(
    events: Iterable[run_pb2.HistoryEvent], node_id: str
) -> list[tuple[int, dict[str, Any]]]:
    """(attempt, data["ai"]) of the node's events that carry one, in history order; a
    dead-lettering's copy of its last attempt's failure is left out."""
    found: list[tuple[int, dict[str, Any]]] = []
    failed_attempts: set[int] = set()
    for event in events:
        if event.node_id != node_id:
            continue
        data = event_data(event)
        ai = data.get("ai")
        if not isinstance(ai, dict):
            # A failure recorded with only its error: the facts are in the error's details.
            error = data.get("error")
            ai = failure_facts(error.get("details")) if isinstance(error, dict) else None
        if not isinstance(ai, dict):
            continue
        kind = _kind(event)
        if kind in _REPEATS and event.attempt in failed_attempts:
            continue
        if kind == "EVENT_TYPE_ATTEMPT_FAILED":
            failed_attempts.add(event.attempt)
        found.append((event.attempt, ai))
    return found


def call_view(call: dict[str, Any], attempt: int) -> dict[str, Any]:
    """One model call as the inspector shows it: what was asked, what came back, its cost."""
    prompt = call.get("prompt")
    view: dict[str, Any] = {
        "attempt": attempt,
        "connection": call.get("connection"),
        "model": call.get("model"),
        "repair": call.get("repair", 0),
        "status": call.get("status"),
        "valid": call.get("valid"),
        "tokens": f"{call.get('tokens_in', 0)} in / {call.get('tokens_out', 0)} out",
        "latency ms": call.get("latency_ms"),
        "cost": call.get("cost"),
        "prompt": prompt if isinstance(prompt, dict) else "(redacted: only its hash is kept)",
        "prompt sha256": call.get("prompt_sha256"),
        "reply": call.get("raw_reply", ""),
        "errors": call.get("errors") or None,
    }
    return {key: value for key, value in view.items() if value is not None}


def _calls(records: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        call_view(call, attempt)
        for attempt, ai in records
        for call in ai.get("calls") or []
        if isinstance(call, dict)
    ]


def summary_line(calls: list[dict[str, Any]]) -> str:
    """`3 calls · 2 repairs · 168 tokens · 41 ms · cost 0.000042`, summed over the calls
    shown (every attempt's, on a step's row)."""
    repairs = sum(1 for call in calls if call.get("repair"))
    tokens = sum(_tokens(call) for call in calls)
    latency = sum(float(call.get("latency ms") or 0) for call in calls)
    parts = [
        f"{len(calls)} call{'s' * (len(calls) != 1)}",
        f"{repairs} repair{'s' * (repairs != 1)}",
        f"{tokens} tokens",
        f"{latency:.0f} ms",
    ]
    costs = [call["cost"] for call in calls if isinstance(call.get("cost"), int | float)]
    if costs:
        parts.append(f"cost {sum(costs):.6g}")
    return " · ".join(parts)


def _tokens(call: dict[str, Any]) -> int:
    text = str(call.get("tokens", ""))
    return sum(int(word) for word in text.split() if word.isdigit())


def outcome_of(records: list[tuple[int, dict[str, Any]]]) -> str | None:
    """How the step ended, in words; None while it has not."""
    for _, ai in reversed(records):
        source = ai.get("source")
        if source == "human_review":
            return f"human review by {ai.get('decided_by') or '?'}"
        if source == "model":
            return f"valid reply from {ai.get('connection') or '?'}"
        if source == "fallback_model":
            return f"valid reply from fallback model {ai.get('connection') or '?'}"
        if source == "default":
            return "the node's default output (no model reply validated)"
    return None


def ai_section(
    events: Iterable[run_pb2.HistoryEvent], node_id: str, attempt: int | None = None
) -> dict[str, Any] | None:
    """The inspector's "ai" section of a step (or of one of its attempts); None when the
    node's history holds no model call (not an AI step, or not called yet)."""
    records = ai_records(events, node_id)
    if attempt is not None:
        records = [(number, ai) for number, ai in records if number == attempt]
    if not records:
        return None
    calls = _calls(records)
    last = records[-1][1]
    section: dict[str, Any] = {"summary": summary_line(calls)}
    if (outcome := outcome_of(records)) is not None:
        section["outcome"] = outcome
    if "output" in last and last.get("source") is not None:
        section["output"] = last["output"]
    if calls:
        section["calls"] = calls
    if isinstance(last.get("last_reply"), str):
        section["last reply"] = last["last_reply"]
    return section


def is_ai_review(
    run: run_pb2.Run | None, events: Iterable[run_pb2.HistoryEvent], node_id: str
) -> bool:
    """Whether an approval at the node is an `ai` step's human review (whose decision must
    carry the output the step takes): the step is an `ai` one (the only approval such a node
    opens is its review), or the history's request says so."""
    steps = run.steps if run is not None else []
    if any(step.node_id == node_id and step.kind == "ai" for step in steps):
        return True
    requested = [
        event
        for event in events
        if event.node_id == node_id and _kind(event) == "EVENT_TYPE_APPROVAL_REQUESTED"
    ]
    return bool(requested) and event_data(requested[-1]).get("ai_review") is True


def output_draft(shown: Any) -> str:
    """What an output dialog starts with: the model's last reply (what the review shows
    under "reply") when it is a JSON object, often nearly right; else an empty object."""
    try:
        reply = json.loads(shown.get("reply") or "") if isinstance(shown, dict) else None
    except (ValueError, TypeError):
        reply = None
    return json.dumps(reply, indent=2) if isinstance(reply, dict) else "{\n}"


def failure_facts(details: Any) -> dict[str, Any] | None:
    """An AI failure's facts (calls, last_reply, errors, usage) from an error's details: the
    details are that JSON object, or end with it as their last line (after a traceback)."""
    if not isinstance(details, str) or not details.strip():
        return None
    for text in (details, details.strip().rsplit("\n", 1)[-1]):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        if isinstance(parsed, dict) and ("calls" in parsed or "last_reply" in parsed):
            return parsed
    return None


def last_reply_lines(details: str) -> list[str]:
    """A dead letter's lines about the model's last raw reply and why it did not validate;
    [] when the error's details are not an AI step's."""
    parsed = failure_facts(details)
    if parsed is None or not isinstance(parsed.get("last_reply"), str):
        return []
    calls = [call for call in parsed.get("calls") or [] if isinstance(call, dict)]
    repairs = sum(1 for call in calls if call.get("repair"))
    lines = [
        f"model calls: {len(calls)} ({repairs} repair turn{'s' * (repairs != 1)}), "
        "no reply validated",
        "",
        "last raw reply:",
        parsed["last_reply"] or "(empty)",
    ]
    errors = [str(error) for error in parsed.get("errors") or []]
    if errors:
        lines += ["", "validation errors:", *(f"  - {error}" for error in errors)]
    return lines
