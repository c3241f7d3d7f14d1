"""Properties of AI nodes over random runs: results, failures, lost attempts, reviews decided
well and badly, deadlines, operators' retries and skips, cancellations, stale results.

After every transition: replay of the history so far gives the engine's state; the run's AI
usage is what its history's results report; a refused review decision changes nothing; and
a completed AI step's output is the connector result's `output` (or the reviewer's).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.engine import state as s
from controlplane.engine.events import (
    ApprovalDecided,
    CancelRequested,
    RunEvent,
    StepRetryRequested,
    StepSkipRequested,
    TimerFired,
)
from controlplane.engine.machine import RunClosed, apply
from controlplane.engine.nodes import NotWaiting, OutputRefused
from controlplane.engine.nodes.ai import run_usage
from controlplane.engine.replay import state_at
from controlplane.engine.triage import NotDeadLettered
from tests.ai_registration.ai_definitions import (
    ai_node,
    ai_result,
    ai_workflow,
    output_invalid,
    review_fallback,
)
from tests.engine.test_replay import Recorder, view
from tests.engine.workflow_builders import T0, completed, error, failed, lost, start

GOOD = {"category": "bug", "urgent": False}
BAD = {"category": "spam"}

ACTIONS = (
    "complete",
    "invalid",
    "retryable",
    "lose",
    "approve",
    "approve_bad",
    "approve_empty",
    "reject",
    "deadline",
    "retry",
    "skip",
    "cancel",
    "stale",
)
actions = st.lists(
    st.tuples(st.sampled_from(ACTIONS), st.integers(1, 50), st.integers(0, 30)), max_size=25
)


def definition(reviewed: bool) -> Any:
    fallbacks = (review_fallback(timeout_seconds=60),) if reviewed else ()
    return ai_workflow(
        ai_node("first", next="second", fallbacks=fallbacks, max_run_tokens=100),
        ai_node("second", input="steps.first.output", fallbacks=fallbacks),
    )


def event_for(what: str, tokens: int, run: s.RunState, now: float) -> RunEvent:
    node = run.current_node or "first"
    step = run.steps.get(node)
    attempt = step.attempt if step else 1
    if what == "complete":
        return completed(node, attempt, ai_result(GOOD, tokens=tokens), now)
    if what == "invalid":
        return failed(node, attempt, output_invalid(tokens=tokens), now)
    if what == "retryable":
        details = json.dumps({"usage": {"tokens": tokens, "cost": 0.01}})
        return failed(node, attempt, error("AiTimeout") | {"details": details}, now)
    if what == "lose":
        return lost(node, attempt, now)
    if what.startswith("approve"):
        output = {"approve": GOOD, "approve_bad": BAD, "approve_empty": None}[what]
        return ApprovalDecided(node, True, "bob", "", now, output=output, has_output=bool(output))
    if what == "reject":
        return ApprovalDecided(node, False, "bob", "no", now)
    if what == "deadline":
        return TimerFired(node, "ai_review_deadline", now)
    if what == "retry":
        return StepRetryRequested(node, "ops", "again", now)
    if what == "skip":
        return StepSkipRequested(node, "ops", "by hand", now, output=GOOD)
    if what == "cancel":
        return CancelRequested("enough", "ops", now)
    return completed(node, max(1, attempt - 1 - tokens % 2), ai_result(GOOD), now)


def usage_in_history(recorder: Recorder) -> int:
    """Tokens the history's accepted results report."""
    total = 0
    for e in recorder.events:
        if e.type in ("ATTEMPT_COMPLETED", "ATTEMPT_FAILED") and isinstance(e.data.get("ai"), dict):
            total += int((e.data["ai"].get("usage") or {}).get("tokens") or 0)
    return total


@settings(max_examples=150, deadline=None)
@given(reviewed=st.booleans(), steps=actions)
def test_ai_runs_replay_count_their_usage_and_refuse_bad_reviews_without_change(
    reviewed: bool, steps: list[tuple[str, int, int]]
) -> None:
    driven = start(definition(reviewed), {"ticket": {"text": "crash"}})
    recorder = Recorder()
    recorder.add(driven.started)
    now = T0
    for what, tokens, elapsed in steps:
        now += elapsed
        before = copy.deepcopy(driven.run)
        event = event_for(what, tokens, driven.run, now)
        try:
            run, transition = apply(
                driven.run, event, driven.definition, driven.catalog, driven.uniform
            )
        except OutputRefused:
            assert what in ("approve_bad", "approve_empty")
            assert driven.run == before
            continue
        except (NotWaiting, RunClosed, NotDeadLettered):
            assert driven.run == before
            continue
        assert driven.run == before, "apply changed the state it was given"
        driven.run = run
        recorder.add(transition)

        replayed = state_at(run.id, "default", recorder.events)
        assert view(replayed.state) == view(run)
        assert run_usage(run)[0] == usage_in_history(recorder)
        for step in run.steps.values():
            if step.status == s.STEP_COMPLETED:
                assert step.output == GOOD
        if run.status == s.WAITING:
            assert reviewed
            [waiting] = [st for st in run.steps.values() if st.status == s.STEP_WAITING]
            assert waiting.last_error is not None
            assert waiting.last_error["type"] == "AiOutputInvalid"
