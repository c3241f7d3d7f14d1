"""The run screen's JSON inspector, on fixed data (the fake RunClient of the snapshots): the
selected step's input, error and attempts, a node expanded and copied as JSON, the operator's
expansions kept while the screen refreshes, and the run row showing what it is blocked on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from console.inspector import Inspector
from console.screens.run import RunScreen
from console.trace import RUN_ROW
from console.trace_table import TraceTable
from tests.console.console_support import until
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp
from tests.console.test_console_run_snapshots import FLAKY, payload, run_screen


async def aim(pilot: Any, inspector: Inspector, path: tuple[str, ...]) -> Any:
    """The cursor on the node at `path`, as the arrows would put it there."""
    node = inspector._find(path)
    assert node is not None, path
    inspector.move_cursor(node)
    await until(pilot, lambda: inspector.cursor_node is node, f"cursor on {path}")
    return node


def test_the_inspector_shows_a_step_copies_a_value_and_keeps_what_was_expanded() -> None:
    async def scenario() -> None:
        app = ScreenApp(FakeControlPlane(), run_screen(FLAKY))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            await until(pilot, lambda: screen.run is not None, "the run")
            table = screen.query_one(TraceTable)
            inspector = screen.query_one(Inspector)
            await until(pilot, lambda: "charge" in table.keys, "the trace")

            table.select(RUN_ROW)
            await until(pilot, lambda: "blocked on" in inspector.sections, "the run row")
            [blocked] = inspector.sections["blocked on"]
            assert blocked["kind"] == "RUNNING" and blocked["node"] == "charge"

            table.select("charge")
            await until(pilot, lambda: "attempts" in inspector.sections, "the step")
            sections = inspector.sections
            assert sections["input"] == {"amount": 1250, "customer": "cus_0001"}
            assert sections["error"]["type"] == "PaymentUnavailable"
            outcomes = [attempt["outcome"] for attempt in sections["attempts"]]
            assert outcomes == ["FAILED", "FAILED", "RUNNING"]

            # tab to the inspector, the cursor on "input", `c` copies it as JSON.
            await pilot.press("tab")
            assert app.focused is inspector
            await aim(pilot, inspector, ("input",))
            await pilot.press("c")
            assert json.loads(app.clipboard) == {"amount": 1250, "customer": "cus_0001"}

            # The attempts section opened by hand stays open through the refreshes.
            attempts = await aim(pilot, inspector, ("attempts",))
            assert not attempts.children[0].is_expanded
            await pilot.press("down", "space")
            # The run changes (its running attempt's progress): the next refresh redraws.
            run, _ = screen.client.runs[FLAKY]  # type: ignore[attr-defined]
            run.steps[1].attempts[2].details.CopyFrom(payload({"seconds_left": 1.0}))
            screen.refresh_now()

            def progressed() -> bool:
                return bool(inspector.sections["attempts"][2]["progress"]["seconds_left"] == 1.0)

            await until(pilot, progressed, "the new progress shown")
            node = inspector._find(("attempts", "0"))
            assert node is not None and node.is_expanded, "the refresh folded it back"

    asyncio.run(scenario())
