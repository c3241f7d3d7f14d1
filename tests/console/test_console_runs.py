"""The runs screen and a run's screen against a real control plane and worker: runs started
through the API show up and change status live; a run opens on its steps and history."""

from __future__ import annotations

import asyncio

from textual.widgets import Log

from console.live_table import LiveTable
from console.screens.run import RunScreen
from console.screens.runs import RunsScreen
from console.trace import RUN_ROW
from console.trace_table import TraceTable
from tests.console.console_support import SIZE, console, text_of, until
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import register, start_run
from tests.support.workflows import three_steps


def test_runs_show_up_change_status_live_and_open_on_their_history(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("shown"))
    # No worker yet: the run cannot finish before the console has seen it unfinished.
    run_id = start_run(stub, "shown", {"trail": []})
    other_id = start_run(stub, "shown", {"trail": []})

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: {run_id, other_id} <= set(table.keys), "runs listed")
            assert table.cells(run_id)[1] == "shown@1"
            assert table.cells(run_id)[2] != "COMPLETED", table.cells(run_id)
            assert "connected" in text_of(app, "#connection")
            # Newest first: the cursor starts on the other run.
            table.move_cursor(row=table.keys.index(run_id))

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "run screen open")
            log = app.screen.query_one(Log)
            await until(pilot, lambda: any("STEP_SCHEDULED" in line for line in log.lines), "a")
            assert "RUN_COMPLETED" not in "\n".join(log.lines)

            # The run goes on while it is shown: its history grows at the end of the tail.
            worker()
            await until(pilot, lambda: any("RUN_COMPLETED" in line for line in log.lines), "tail")
            lines = list(log.lines)
            assert lines[0].split()[0::2][:2] == ["1", "RUN_STARTED"], lines[0]
            seqs = [line.split()[0] for line in lines]
            assert seqs == [str(n) for n in range(1, len(lines) + 1)], "gaps or repeats"
            assert any("STEP_SCHEDULED" in line and " b " in line for line in lines), lines
            await until(pilot, lambda: "COMPLETED" in text_of(app, "#run-header"), "header")
            steps = app.screen.query_one(TraceTable)
            await until(pilot, lambda: steps.keys == [RUN_ROW, "a", "b", "c"], "steps shown")
            assert steps.shown_rows[2].cells[1].plain == "COMPLETED"

            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen), "back to the runs")
            await until(pilot, lambda: table.cells(run_id)[2] == "COMPLETED", "status updated")
            assert table.selected_key == run_id, "the refresh moved the cursor"

            await pilot.press("n")  # needs attention only: none
            await until(pilot, lambda: table.keys == [], "filtered to needs attention")
            await pilot.press("a")
            await until(pilot, lambda: run_id in table.keys, "all runs again")

    asyncio.run(scenario())


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


def test_the_console_outlives_a_control_plane_crash_and_reconnects(
    control_plane: ControlPlane,
) -> None:
    register(control_plane.stub, three_steps("kept"))
    run_id = start_run(control_plane.stub, "kept", {"trail": []})

    async def scenario() -> None:
        app = console(control_plane.address)
        async with app.run_test(size=SIZE) as pilot:
            table = app.screen.query_one(LiveTable)
            await until(pilot, lambda: run_id in table.keys, "run listed")

            control_plane.kill()
            await until(pilot, lambda: "unreachable" in text_of(app, "#connection"), "down")
            assert table.keys == [run_id], "what was shown stays shown"

            await asyncio.to_thread(control_plane.restart)
            await until(pilot, lambda: "connected" in text_of(app, "#connection"), "back")
            assert table.keys == [run_id]
            assert app.is_running

    asyncio.run(scenario())
