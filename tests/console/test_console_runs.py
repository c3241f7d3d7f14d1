"""The runs screen against a real control plane and worker: live through WatchRuns (a run
appears and changes status with no key pressed, the cursor staying on its run), counts by
status, filters by status, workflow, id prefix and time sent to the server, a run leaving a
status filter, sorting, older runs loaded as the cursor reaches the end, marked runs paused
in bulk through a dry-run-first operation; and the screen outliving its control plane."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from textual.widgets import Input

from console.app import SurefootConsole
from console.live_table import LiveTable
from console.prompt import PromptModal
from console.screens import runs as runs_screen
from console.screens.operations import OperationScreen
from console.screens.run_action import RunActionModal
from console.screens.runs import RunsScreen
from tests.console.console_support import SIZE, console, text_of, until
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, history, register, start_run, wait_for_status
from tests.support.workflows import three_steps

SLOW_B = {"trail": [], "b": {"sleep_seconds": 60}}


async def runs_shown(app: SurefootConsole, pilot: Any) -> tuple[RunsScreen, LiveTable]:
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    await until(pilot, lambda: screen.live == "live", "the runs stream")
    return screen, screen.table


async def type_filter(app: SurefootConsole, pilot: Any, typed: str) -> None:
    await pilot.press("slash")
    await until(pilot, lambda: isinstance(app.screen, PromptModal), "the filter prompt")
    app.screen.query_one(Input).value = typed
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, RunsScreen), "filtered")


def status_of(table: LiveTable, run_id: str) -> str:
    return table.cells(run_id)[3]


def test_runs_are_live_counted_filtered_and_sorted(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("shown"))
    register(stub, three_steps("other"))
    # No worker yet: the runs cannot finish before the console has seen them unfinished.
    first = start_run(stub, "shown", {"trail": []})
    other = start_run(stub, "other", {"trail": []})

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await runs_shown(app, pilot)
            await until(pilot, lambda: {first, other} <= set(table.keys), "runs listed")
            assert table.cells(first)[2] == "shown@1" and status_of(table, first) == "RUNNING"
            assert table.keys.index(other) < table.keys.index(first), "newest first"
            await until(pilot, lambda: screen.counts.get("RUNNING") == 2, "counted")
            assert "running 2" in text_of(app, "#counts")
            # Counted by the stream: a refresh of the screen asks the server nothing.
            asked: list[object] = []
            screen.client.list_runs = lambda *args: asked.append(args)  # type: ignore[method-assign,assignment,func-returns-value]
            await screen.poll()
            assert asked == []
            del screen.client.list_runs

            # A run started now appears, with no key pressed; the cursor stays on its run.
            table.move_cursor(row=table.keys.index(first))
            late = await asyncio.to_thread(start_run, stub, "shown", {"trail": []})
            await until(pilot, lambda: late in table.keys, "the new run, live")
            assert table.selected_key == first, "the new row moved the cursor off its run"
            await until(pilot, lambda: "3 of 3 runs" in text_of(app, "#count"), "total")

            # Sorted by workflow: `other` before the two of `shown`, whatever their age.
            await pilot.press("o", "o", "o")
            assert screen.sort_by == "workflow"
            await pilot.press("O")
            assert table.keys[0] == other, table.keys
            assert "sorted by workflow ↑" in text_of(app, "#filters")

            # Status and workflow go to the server; a run leaves when its status does.
            await type_filter(app, pilot, "status:running workflow:shown")
            await until(pilot, lambda: set(table.keys) == {first, late}, "filtered")
            assert "2 of 2 runs" in text_of(app, "#count")
            await asyncio.to_thread(worker)
            await until(pilot, lambda: table.keys == [], "both completed: out of the filter")
            # The counts follow runs the filter no longer shows (those of workflow:shown).
            await until(
                pilot,
                lambda: screen.counts.get("COMPLETED") == 2 and not screen.counts.get("RUNNING"),
                "counted as they completed",
            )

            await type_filter(app, pilot, f"id:{first[:8]}")
            await until(pilot, lambda: table.keys == [first], "by id prefix")
            assert status_of(table, first) == "COMPLETED"
            await type_filter(app, pilot, "since:1h workflow:other")
            await until(pilot, lambda: table.keys == [other], "by time and workflow")
            await type_filter(app, pilot, "until:1h")
            await until(pilot, lambda: screen.total == 0 and table.keys == [], "none that old")

            # A bad term is refused in one line; the filter shown stays.
            await type_filter(app, pilot, "since:yesterday")
            assert "until:1h" in text_of(app, "#filters")

    asyncio.run(scenario())


def test_older_runs_load_as_the_cursor_reaches_the_end(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("many"))
    run_ids = [start_run(stub, "many", {"trail": []}) for _ in range(12)]
    monkeypatch.setattr(runs_screen, "LIVE_LIMIT", 5)
    monkeypatch.setattr(runs_screen, "MORE_PAGE", 4)

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await runs_shown(app, pilot)
            await until(pilot, lambda: len(table.keys) == 5, "the live window")
            assert "5 of 12 runs" in text_of(app, "#count")
            assert table.keys == run_ids[::-1][:5]
            await pilot.press("pagedown")
            await until(pilot, lambda: len(table.keys) == 9, "a page more")
            await pilot.press("pagedown")
            await until(pilot, lambda: len(table.keys) == 12, "the rest")
            assert table.keys == run_ids[::-1], "each run once, newest first"
            assert "12 of 12 runs" in text_of(app, "#count")

    asyncio.run(scenario())


def test_marked_runs_are_paused_in_bulk_after_a_dry_run(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("bulk"))
    worker()
    held = [start_run(stub, "bulk", SLOW_B) for _ in range(2)]
    done = start_run(stub, "bulk", {"trail": []})
    left_alone = start_run(stub, "bulk", SLOW_B)
    wait_for_status(stub, done, "COMPLETED")

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await runs_shown(app, pilot)
            await until(pilot, lambda: {*held, done, left_alone} <= set(table.keys), "listed")
            for run_id in (*held, done):
                table.move_cursor(row=table.keys.index(run_id))
                await pilot.press("space")
            assert screen.marked == {*held, done}
            await pilot.press("P")
            await until(pilot, lambda: isinstance(app.screen, RunActionModal), "dialog")
            plan = app.screen.query_one("#plan")
            await until(pilot, lambda: "matched 3 · applies to 2" in str(plan.render()), "plan")
            assert "the run has ended" in str(plan.render())
            app.screen.query_one("#comment", Input).value = "maintenance"
            app.screen.query_one("#comment", Input).focus()
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, OperationScreen), "its progress")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen and not screen.marked, "cleared")

    asyncio.run(scenario())

    def paused_once(run_id: str) -> bool:
        [paused] = events_of(history(stub, run_id), "RUN_PAUSED")
        return bool(paused.data["reason"] == "maintenance")

    assert_eventually(lambda: all(paused_once(r) for r in held), 30.0, message="both paused")
    assert not events_of(history(stub, done), "RUN_PAUSED")
    assert not events_of(history(stub, left_alone), "RUN_PAUSED")


def test_a_console_with_no_control_plane_says_unreachable_and_keeps_going(
    unused_address: str,
) -> None:
    async def scenario() -> None:
        app = console(unused_address)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "unreachable" in text_of(app, "#connection"), "status")
            assert unused_address in text_of(app, "#connection")
            await pilot.press("d")
            await until(pilot, lambda: "unreachable" in text_of(app, "#connection"), "on d")
            await pilot.press("p")
            await until(pilot, lambda: "unreachable" in text_of(app, "#connection"), "on p")
            assert app.is_running
            await pilot.press("q")
        assert app.return_code in (0, None)

    asyncio.run(scenario())


def test_the_runs_outlive_a_control_plane_crash_and_follow_again(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    register(control_plane.stub, three_steps("kept"))
    run_id = start_run(control_plane.stub, "kept", {"trail": []})

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await runs_shown(app, pilot)
            await until(pilot, lambda: run_id in table.keys, "run listed")

            control_plane.kill()
            await until(pilot, lambda: "reconnecting" in screen.live, "said")
            assert table.keys == [run_id], "what was shown stays shown"

            await asyncio.to_thread(control_plane.restart)
            await until(pilot, lambda: screen.live == "live", "live again")
            assert table.keys == [run_id]
            # Live again: the run completing shows with no key pressed.
            await asyncio.to_thread(worker)
            await until(pilot, lambda: status_of(table, run_id) == "COMPLETED", "followed")

    asyncio.run(scenario())
