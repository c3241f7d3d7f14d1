"""The console's AI views on fixed data shaped as the engine records an `ai` step (data["ai"]
of its events, the AiOutputInvalid details): the run view's inspector shows each call's
prompt, raw reply, validation errors, repair number, tokens, latency and cost, per step and
per attempt, and a redacted prompt as such; the dead-letter view puts the last raw reply and
its errors first; the definitions view lists a version's evaluations, and says "no
evaluations" when the control plane has no evaluation service. Real runs: test_ai_console.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from surefoot.v1 import evaluation_service_pb2 as epb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from textual.screen import Screen
from textual.widgets import Static, TextArea

from console.client import ControlPlane
from console.inspector import Inspector
from console.modals import TextModal
from console.screens.dead_letter_item import DeadLetterScreen
from console.screens.definitions import DefinitionsScreen
from console.screens.run import RunScreen
from console.trace_table import TraceTable, row_key
from tests.console.console_support import until
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp
from tests.console.test_console_run_snapshots import T0, History, at, payload

RUN = "run-a1000000-0000-4000-8000-00000000a1a1"
SYSTEM = "You triage support tickets."
USER = "Subject: App crashes\ngarbled: it crashes on start"
ERROR = "reply is not JSON: Expecting value: line 1 column 36 (char 35)"
CUT_SHORT = '{"category": "technical", "urgency": '
GOOD = {"category": "technical", "urgency": "normal", "summary": "technical ticket: App crashes"}


def call(repair: int, reply: str, errors: list[str], **overrides: Any) -> dict[str, Any]:
    made = {
        "connection": "triage",
        "model": "surefoot-dev-classifier",
        "repair": repair,
        "prompt_sha256": "ab" * 32,
        "prompt": {"system": SYSTEM, "user": USER},
        "raw_reply": reply,
        "valid": not errors,
        "errors": errors,
        "status": "ok" if not errors else "invalid",
        "tokens_in": 60,
        "tokens_out": 8 if errors else 24,
        "latency_ms": 12.5,
        "cost": 0.0000138,
    }
    return made | overrides


def ai_history() -> History:
    """classify: attempt 1 failed (a 503 after one invalid reply), attempt 2 repaired once."""
    h = History()
    h.add("RUN_STARTED", 0, principal="ops", workflow="support", version="1")
    h.add("STEP_SCHEDULED", 0, "classify", 1, input={"node": "classify"})
    h.add("ATTEMPT_STARTED", 0.1, "classify", 1)
    failed_calls = [
        call(0, CUT_SHORT, [ERROR]),
        call(1, "", ["HTTP 503"], status="http_503", prompt=None, valid=False, cost=None),
    ]
    failure = {"calls": failed_calls, "usage": {"tokens": 128, "cost": 0.0000138}}
    h.add("ATTEMPT_FAILED", 0.5, "classify", 1, error={"type": "AiServerError"}, ai=failure)
    h.add("RETRY_SCHEDULED", 0.5, "classify", 2, delay_seconds=1, due_at=T0 + 1.5)
    h.add("ATTEMPT_STARTED", 1.6, "classify", 2)
    result = {
        "output": GOOD,
        "source": "model",
        "connection": "triage",
        "calls": [call(0, CUT_SHORT, [ERROR]), call(1, json.dumps(GOOD), [])],
        "usage": {"tokens": 152, "cost": 0.0000276},
    }
    h.add("ATTEMPT_COMPLETED", 2.0, "classify", 2, output=GOOD, ai=result)
    return h


def ai_run() -> run_pb2.Run:
    classify = run_pb2.Step(
        node_id="classify",
        step_type="surefoot.ai",
        kind="ai",
        status=run_pb2.STEP_STATUS_COMPLETED,
        attempt=2,
        output=payload(GOOD),
        attempts=[
            run_pb2.Attempt(
                number=1,
                started_at=at(0.1),
                ended_at=at(0.5),
                outcome=run_pb2.ATTEMPT_OUTCOME_FAILED,
            ),
            run_pb2.Attempt(
                number=2,
                started_at=at(1.6),
                ended_at=at(2.0),
                outcome=run_pb2.ATTEMPT_OUTCOME_COMPLETED,
            ),
        ],
    )
    return run_pb2.Run(
        id=RUN,
        workflow_name="support",
        workflow_version="1",
        status=run_pb2.RUN_STATUS_RUNNING,
        created_at=at(0),
        updated_at=at(2.0),
        steps=[classify],
    )


def run_screen(control_plane: ControlPlane) -> Screen[None]:
    from tests.console.test_console_run_snapshots import FakeRunClient

    client: Any = FakeRunClient(control_plane)
    client.runs = {RUN: (ai_run(), ai_history())}
    return RunScreen(control_plane, RUN, client=client, clock=lambda: T0 + 3.0)


def test_the_run_view_shows_an_ai_steps_calls_per_step_and_per_attempt() -> None:
    async def scenario() -> None:
        app = ScreenApp(FakeControlPlane(), run_screen)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            table = screen.query_one(TraceTable)
            inspector = screen.query_one(Inspector)
            await until(pilot, lambda: screen.run is not None and "classify" in table.keys, "run")
            table.select("classify")
            await until(pilot, lambda: "ai" in inspector.sections, "the ai section")
            ai = inspector.sections["ai"]
            # Both attempts' calls, in order: 4 calls, 2 of them repairs.
            assert ai["summary"] == "4 calls · 2 repairs · 288 tokens · 50 ms · cost 4.14e-05"
            assert ai["outcome"] == "valid reply from triage"
            assert ai["output"] == GOOD
            first, unavailable, again, repaired = ai["calls"]
            assert first["attempt"] == 1 and first["repair"] == 0
            assert first["prompt"] == {"system": SYSTEM, "user": USER}
            assert first["reply"] == CUT_SHORT and first["errors"] == [ERROR]
            assert first["valid"] is False and first["status"] == "invalid"
            assert first["tokens"] == "60 in / 8 out" and first["latency ms"] == 12.5
            assert unavailable["status"] == "http_503" and "cost" not in unavailable
            assert unavailable["prompt"] == "(redacted: only its hash is kept)"
            assert unavailable["prompt sha256"] == "ab" * 32
            assert again["attempt"] == repaired["attempt"] == 2
            assert repaired["repair"] == 1 and repaired["valid"] is True
            assert json.loads(repaired["reply"]) == GOOD and "errors" not in repaired

            # The first attempt's row shows that attempt's calls only.
            table.toggle_expanded("classify")
            first_attempt = row_key("classify", 1)
            await until(pilot, lambda: first_attempt in table.keys, "the attempt rows")
            table.select(first_attempt)
            await until(pilot, lambda: "attempt" in inspector.sections, "the attempt row")
            assert [c["repair"] for c in inspector.sections["ai"]["calls"]] == [0, 1]
            summary = inspector.sections["ai"]["summary"]
            assert summary == "2 calls · 1 repair · 136 tokens · 25 ms · cost 1.38e-05"

    asyncio.run(scenario())


class OutOfRepairs(FakeControlPlane):
    """A dead-lettered ai step whose error details are the connector's AiOutputInvalid."""

    async def get_run(self, run_id: str) -> run_pb2.Run:
        run = await super().get_run(run_id)
        details = {
            "calls": [call(0, "I cannot help", ["not JSON"]), call(1, "Still no", ["not JSON"])],
            "last_reply": "Still no",
            "errors": ["reply is not JSON: Expecting value: line 1 column 1 (char 0)"],
            "usage": {"tokens": 136, "cost": None},
        }
        run.steps[0].last_error.CopyFrom(
            run_pb2.StepError(
                type="AiOutputInvalid",
                message="no reply of triage validated after 1 repair",
                details=json.dumps(details),
            )
        )
        return run


def test_the_dead_letter_view_shows_the_last_raw_reply_first() -> None:
    dead = ws.DeadLetter(
        run_id=RUN,
        node_id="charge",
        workflow_name="support",
        workflow_version="1",
        step_type="surefoot.ai",
        step_version="1",
        error_type="AiOutputInvalid",
        error_message="no reply of triage validated after 1 repair",
        attempts=1,
        idempotency="key",
    )

    async def scenario() -> None:
        app = ScreenApp(OutOfRepairs(), lambda cp: DeadLetterScreen(cp, dead))
        async with app.run_test(size=(160, 48)) as pilot:

            def item() -> str:
                return str(app.screen.query_one("#item", Static).content)

            await until(pilot, lambda: "last raw reply" in item(), "the reply")
            text = item()
            lines = text.splitlines()
            reply_at = lines.index("last raw reply:")
            assert lines[reply_at + 1] == "Still no"
            assert "model calls: 2 (1 repair turn), no reply validated" in lines
            assert "  - reply is not JSON: Expecting value: line 1 column 1 (char 0)" in lines
            # Before the full details, which are still there.
            assert reply_at < lines.index("details:")

    asyncio.run(scenario())


def evaluation(id: str, version: str, passed: bool, score: float) -> epb.Evaluation:
    return epb.Evaluation(
        id=id,
        workflow_name="checkout",
        workflow_version=version,
        kind="set",
        against_version="2" if version == "3" else "",
        score=score,
        threshold=0.8,
        passed=passed,
        cases=10,
        passed_cases=round(score * 10),
        regressions=2 if not passed else 0,
        recorded_by="ci",
        recorded_at=at(60),
    )


class Evaluated(FakeControlPlane):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, str]] = []

    async def list_evaluations(self, name: str, version: str = "") -> list[epb.Evaluation]:
        self.asked.append((name, version))
        return [evaluation("ev-2", "3", False, 0.7), evaluation("ev-1", "3", True, 0.9)]


def modal_text(app: ScreenApp) -> str:
    """The text of the modal shown ("" while none is)."""
    screen = app.screen
    return screen.query_one(TextArea).text if isinstance(screen, TextModal) else ""


async def open_evaluations(control_plane: FakeControlPlane) -> str:
    app = ScreenApp(control_plane, DefinitionsScreen)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.screen
        assert isinstance(screen, DefinitionsScreen)
        await until(pilot, lambda: len(screen.definitions.keys) == 3, "versions listed")
        screen.definitions.table.move_cursor(row=2)
        await until(pilot, lambda: screen.definitions.selected_item is not None, "checkout@3")
        await pilot.press("v")
        return await until(pilot, lambda: modal_text(app), "the evaluations")


def test_the_definitions_view_lists_a_versions_evaluations() -> None:
    control_plane = Evaluated()
    text = asyncio.run(open_evaluations(control_plane))
    assert control_plane.asked == [("checkout", "3")]
    lines = text.splitlines()
    assert lines[0] == "checkout@3: 2 evaluation(s), 1 passed, newest first"
    assert lines[2].startswith("ev-2  FAILED 0.70 < 0.80 · 7/10 cases · 2 regressions vs 2 · set")
    assert lines[3].startswith("ev-1  PASSED 0.90 ≥ 0.80 · 9/10 cases · 0 regressions vs 2")
    assert "by ci at 2026-09-21 14:14:20Z" in lines[3]


def test_the_definitions_view_says_no_evaluations_without_an_evaluation_service() -> None:
    # The fake answers every raw read UNIMPLEMENTED, as a control plane without the service.
    text = asyncio.run(open_evaluations(FakeControlPlane()))
    assert text == "checkout@3: no evaluations (this control plane does not record evaluations)"
