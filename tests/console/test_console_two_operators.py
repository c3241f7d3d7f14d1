"""Two operators on the same dead-letter group, each in a console: what one retries leaves the
other's list; the other's cursor stays on its own dead letter as rows move (re-aimed by id),
and an `r` on the dead letter that left is refused: never applied to the row that slid
under the cursor."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from textual.pilot import Pilot

from console.app import SurefootConsole
from console.modals import CommentModal
from console.paged_table import PagedTable
from console.screens.dead_letter_group import GroupScreen
from console.screens.dead_letters import DeadLettersScreen
from tests.console.console_support import SIZE, console, notifications, until
from tests.e2e_redrive.outage_api import OutagePaymentApi
from tests.e2e_redrive.redrive_support import REDRIVE_STEPS, dead_letter_outage, wait_statuses
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import events_of, get_run, history, status_name


@pytest.fixture
def payment_api() -> Iterator[OutagePaymentApi]:
    api = OutagePaymentApi()
    try:
        yield api
    finally:
        api.close()


async def open_the_group(app: SurefootConsole, pilot: Pilot[None], count: int) -> GroupScreen:
    await pilot.press("d")
    await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "groups")
    await until(pilot, lambda: app.screen.query_one("#groups", PagedTable).keys, "the group")
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, GroupScreen), "the group opened")
    screen = app.screen
    assert isinstance(screen, GroupScreen)
    await until(pilot, lambda: len(screen.items.keys) == count, "its dead letters")
    return screen


async def retry(app: SurefootConsole, pilot: Pilot[None], screen: GroupScreen, key: str) -> None:
    screen.items.table.move_cursor(row=screen.items.keys.index(key))
    await pilot.press("r")
    await until(pilot, lambda: isinstance(app.screen, CommentModal), "comment dialog")
    await pilot.press("enter")
    await until(pilot, lambda: app.screen is screen, "sent")


def test_a_dead_letter_retried_by_one_console_is_never_acted_on_by_mistake_in_the_other(
    control_plane: ControlPlane, worker: StartWorker, payment_api: OutagePaymentApi
) -> None:
    stub = control_plane.stub
    worker(REDRIVE_STEPS)
    dead_letter_outage(stub, payment_api, "two-operators", 3)
    payment_api.recover()
    seen: list[str] = []

    async def scenario() -> None:
        first, second = console(control_plane.address), console(control_plane.address)
        refusals = notifications(second)
        async with first.run_test(size=SIZE) as one, second.run_test(size=SIZE) as two:
            mine = await open_the_group(first, one, 3)
            theirs = await open_the_group(second, two, 3)
            oldest, middle, newest = theirs.items.keys
            seen.extend(theirs.items.keys)

            # The second operator is on the middle one; the first retries the one above it.
            theirs.items.table.move_cursor(row=1)
            await retry(first, one, mine, oldest)
            await until(two, lambda: oldest not in theirs.items.keys, "gone from the other")
            assert theirs.items.table.cursor_row == 0, "the row moved up"
            assert theirs.items.table.selected_key == middle, "the cursor followed its dead letter"

            # Now on the newest; the first operator retries it: `r` in the second console
            # finds its dead letter gone and does nothing, not even to the middle one.
            theirs.items.table.move_cursor(row=theirs.items.keys.index(newest))
            await retry(first, one, mine, newest)
            await until(two, lambda: newest not in theirs.items.keys, "gone again")
            refusals.clear()
            await two.press("r")
            assert isinstance(second.screen, GroupScreen), "no dialog: nothing to act on"
            assert len(refusals) == 1 and "nothing done" in refusals[0], refusals
            assert newest in refusals[0]

    asyncio.run(scenario())

    oldest, middle, newest = (key.split(":")[0] for key in seen)
    wait_statuses(stub, [oldest, newest], "COMPLETED")
    assert status_name(get_run(stub, middle).status) == "NEEDS_ATTENTION"
    assert events_of(history(stub, middle), "STEP_RETRIED") == [], "never acted on by mistake"
