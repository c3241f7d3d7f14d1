"""Triage from a dead-letter group against a real control plane and worker: the group opens
on its dead letters; one is retried with edited input, one skipped with an output, and their
runs complete; bad JSON in the dialog sends nothing; a key pressed on a dead letter that
vanished from under the cursor does nothing and says so; a refusal is one notification."""

from __future__ import annotations

import asyncio

from surefoot.v1 import workflow_service_pb2 as ws
from textual.widgets import Static, TextArea

from console.modals import JsonModal
from console.paged_table import PagedTable
from console.screens.dead_letter_group import GroupScreen
from console.screens.dead_letter_item import DeadLetterScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.run import RunScreen
from tests.console.console_support import SIZE, console, notifications, text_of, until
from tests.support.processes import ControlPlane, StartWorker
from tests.support.runs import (
    events_of,
    get_run,
    history,
    payload_value,
    register,
    start_run,
    status_name,
    wait_for_status,
)
from tests.support.workflows import three_steps

DECLINE_B = {"trail": [], "b": {"non_retryable": True}}


def test_retry_with_edited_input_and_skip_from_a_group_complete_the_runs(
    control_plane: ControlPlane, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("triaged"))
    worker()
    to_retry = start_run(stub, "triaged", DECLINE_B)
    to_skip = start_run(stub, "triaged", DECLINE_B)
    for run_id in (to_retry, to_skip):
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    events_before = len(history(stub, to_retry))

    async def scenario() -> None:
        app = console(control_plane.address)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "screen")
            groups = app.screen.query_one("#groups", PagedTable)
            await until(pilot, lambda: groups.keys, "groups listed")
            row = groups.table.cells(groups.keys[0])
            assert row[:5] == ("2", "triaged@1", "e2e-work-sync@1", "key", "CardDeclined")

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, GroupScreen), "group opened")
            screen = app.screen
            assert isinstance(screen, GroupScreen)  # as awaited just above
            items = screen.items
            keys = {f"{to_retry}:b", f"{to_skip}:b"}
            await until(pilot, lambda: keys <= set(items.keys), "dead letters listed")
            assert "2 of 2 dead letters" in str(items.query_one(".count", Static).content)

            # enter: the dead letter in full; o: its run.
            items.table.move_cursor(row=items.keys.index(f"{to_retry}:b"))
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DeadLetterScreen), "item opened")
            await until(pilot, lambda: "attempts:" in text_of(app, "#item"), "its attempts")
            item = text_of(app, "#item")
            assert "error: CardDeclined" in item and '"non_retryable": true' in item, item
            assert "#1 FAILED" in item, item
            await pilot.press("o")
            await until(pilot, lambda: isinstance(app.screen, RunScreen), "its run opened")
            run_screen = app.screen
            assert isinstance(run_screen, RunScreen) and run_screen.run_id == to_retry
            await pilot.press("escape", "escape")
            await until(pilot, lambda: app.screen is screen, "back to the group")

            # e: a dialog prefilled with the step's current input.
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, JsonModal), "edit dialog open")
            editor = app.screen.query_one(TextArea)
            assert '"non_retryable": true' in editor.text, editor.text

            # Bad JSON is refused in the dialog, which stays open; nothing is sent.
            editor.text = '{"trail": ["a"'
            await pilot.press("ctrl+s")
            error = app.screen.query_one("#json-error", Static)
            await until(pilot, lambda: "not JSON" in str(error.content), "inline error")
            assert isinstance(app.screen, JsonModal)
            assert len(history(stub, to_retry)) == events_before
            assert status_name(get_run(stub, to_retry).status) == "NEEDS_ATTENTION"

            # ctrl+a selects everything: typing replaces it.
            await pilot.press("ctrl+a", *'{"trail":["a"]}')
            assert editor.text == '{"trail":["a"]}', editor.text
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.screen is screen, "dialog closed")
            await asyncio.to_thread(wait_for_status, stub, to_retry, "COMPLETED")

            # The retried one leaves the list from under the cursor: `s` now acts on nothing,
            # not on the row that took its place.
            await until(pilot, lambda: f"{to_retry}:b" not in items.keys, "retried one gone")
            assert items.vanished_key == f"{to_retry}:b"
            shown.clear()
            await pilot.press("s")
            assert isinstance(app.screen, GroupScreen), "no dialog for a vanished dead letter"
            assert len(shown) == 1 and "nothing done" in shown[0], shown

            # s: the output the skipped step is taken to have returned.
            items.table.move_cursor(row=items.keys.index(f"{to_skip}:b"))
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, JsonModal), "skip dialog open")
            app.screen.query_one(TextArea).text = '{"trail": ["a", "b-by-hand"]}'
            await pilot.press("ctrl+s")
            await asyncio.to_thread(wait_for_status, stub, to_skip, "COMPLETED")
            await until(pilot, lambda: items.keys == [], "no dead letter left")

            # A second operator's stale view: the server refuses, the console says so in one
            # line (the message of FAILED_PRECONDITION), and goes on.
            shown.clear()
            stale = ws.DeadLetter(run_id=to_retry, node_id="b")
            await screen.retry(stale, None, "")
            assert len(shown) == 1 and shown[0].startswith("FAILED_PRECONDITION: "), shown
            assert "\n" not in shown[0]
            assert app.is_running

        assert app.return_code in (0, None)

    asyncio.run(scenario())

    done = get_run(stub, to_retry)
    assert payload_value(done.output)["trail"] == ["a", "b", "c"]
    [retried] = events_of(history(stub, to_retry), "STEP_RETRIED")
    assert retried.data["input_edited"] is True, retried.data
    done = get_run(stub, to_skip)
    assert payload_value(done.output)["trail"] == ["a", "b-by-hand", "c"]
    assert len(events_of(history(stub, to_skip), "STEP_SKIPPED")) == 1
