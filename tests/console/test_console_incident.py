"""An incident's dead letters handled wholesale from the console: a group redriven after a
confirmation, a run abandoned only once the operator says yes."""

from __future__ import annotations

import asyncio

from console.live_table import LiveTable
from console.modals import ConfirmModal
from console.screens.dead_letters import DeadLettersScreen
from tests.console.console_support import SIZE, console, notifications, until
from tests.support.eventually import assert_eventually
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    get_run,
    history,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import three_steps

DECLINE_B = {"trail": [], "b": {"non_retryable": True}}


def test_a_group_is_redriven_and_a_run_abandoned_after_a_confirmation(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("incident"))
    worker()
    run_ids = [start_run(stub, "incident", DECLINE_B) for _ in range(2)]
    for run_id in run_ids:
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")

    def retried_once_and_dead_again() -> bool:
        for run_id in run_ids:
            assert len(events_of(history(stub, run_id), "STEP_RETRIED", "b")) == 1
            assert len(events_of(history(stub, run_id), "STEP_DEAD_LETTERED", "b")) == 2
        return True

    async def scenario() -> None:
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "screen")
            groups = app.screen.query_one("#groups", LiveTable)
            await until(pilot, lambda: groups.keys, "the group listed")

            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "confirmation")
            await pilot.press("y")
            await until(pilot, lambda: "retried 2; 0 still match" in shown, "redriven")
            # The same input declines again: each run is back, retried once.
            await asyncio.to_thread(assert_eventually, retried_once_and_dead_again, 30.0)

            table = app.screen.query_one("#dead-letters", LiveTable)
            abandoned = run_ids[0]
            await until(pilot, lambda: f"{abandoned}:b" in table.keys, "listed again")
            table.move_cursor(row=table.keys.index(f"{abandoned}:b"))
            # The focus starts on No: enter alone abandons nothing.
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "confirmation")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "dismissed")
            assert status_name(get_run(stub, abandoned).status) == "NEEDS_ATTENTION"

            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmModal), "confirmation")
            await pilot.press("y")
            await asyncio.to_thread(wait_for_status, stub, abandoned, "COMPENSATED")
            await until(pilot, lambda: f"{abandoned}:b" not in table.keys, "gone from the list")

    asyncio.run(scenario())
    assert status_name(get_run(stub, run_ids[1]).status) == "NEEDS_ATTENTION"
