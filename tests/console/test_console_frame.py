"""The console's frame against a real control plane: a read-only console changes nothing, the
approvals inbox never says "no pending approval" when it cannot know, `:` and `/` do what
they say or refuse in one line, and keys remapped in console.toml work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from console.app import SurefootConsole
from console.client import ControlPlane, ReadOnly
from console.help import HelpModal, key_rows
from console.keys import KeymapError, read_keymap
from console.modals import CommentModal
from console.paged_table import PagedTable
from console.screens.approvals import ApprovalsScreen
from console.screens.dead_letter_group import GroupScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.redrive import RedriveModal
from console.screens.workers import WorkersScreen
from tests.console.console_support import SIZE, notifications, text_of, until
from tests.support.processes import ControlPlane as ControlPlaneProcess
from tests.support.processes import StartWorker
from tests.support.runs import history, register, start_run, wait_for_status
from tests.support.workflows import three_steps

DECLINE_B = {"trail": [], "b": {"non_retryable": True}}


def test_a_read_only_console_shows_everything_and_changes_nothing(
    control_plane: ControlPlaneProcess, worker: StartWorker
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("watched"))
    worker()
    run_id = start_run(stub, "watched", DECLINE_B)
    wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    events_before = len(history(stub, run_id))

    async def scenario() -> None:
        control = ControlPlane(control_plane.address, "default", readonly=True)
        app = SurefootConsole(control)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "groups")
            await until(pilot, lambda: "READ-ONLY" in text_of(app, "#connection"), "said")
            groups = app.screen.query_one("#groups", PagedTable)
            await until(pilot, lambda: groups.keys, "the group is shown")
            await pilot.press("R")
            await pilot.pause()
            assert isinstance(app.screen, DeadLettersScreen), "no redrive dialog"
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, GroupScreen), "group opened")
            items = app.screen.query_one("#items", PagedTable)
            await until(pilot, lambda: items.keys == [f"{run_id}:b"], "the dead letter")
            for key in ("r", "e", "s", "c"):
                await pilot.press(key)
                await pilot.pause()
                assert isinstance(app.screen, GroupScreen), f"{key} opened a dialog"
            # The help shows the changes disabled.
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpModal), "help")
            rows = {row[2]: row[3] for row in key_rows(app.screen_stack[-2])}
            assert rows["dead_letter.retry"] is False and rows["dead_letter.open_run"] is True
            # And a write asked another way is refused by the client itself.
            with pytest.raises(ReadOnly):
                await control.retry_step(run_id, "b", None)

    asyncio.run(scenario())
    assert len(history(stub, run_id)) == events_before, "nothing written"


def test_the_approvals_inbox_says_it_cannot_tell_while_the_server_is_unreachable(
    control_plane: ControlPlaneProcess,
) -> None:
    async def scenario() -> None:
        app = SurefootConsole(ControlPlane(control_plane.address, "default"))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ApprovalsScreen), "approvals")
            await until(pilot, lambda: "0 pending" in text_of(app, "#inbox"), "answered")
            assert text_of(app, "#shown") == "no pending approval"
            assert "anonymous (server without auth)" in text_of(app, "#connection")

            control_plane.kill()
            await until(pilot, lambda: "cannot tell" in text_of(app, "#inbox"), "unknown")
            assert "no pending approval" not in text_of(app, "#shown")
            assert "unknown" in text_of(app, "#shown")

    asyncio.run(scenario())


def test_a_console_started_without_a_server_never_says_there_is_nothing_pending(
    unused_address: str,
) -> None:
    async def scenario() -> None:
        app = SurefootConsole(ControlPlane(unused_address, "default"))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("p")
            await until(pilot, lambda: "cannot tell" in text_of(app, "#inbox"), "unknown")
            assert "no pending approval" not in text_of(app, "#shown")
            assert "unreachable" in text_of(app, "#connection")

    asyncio.run(scenario())


def test_jump_filter_and_a_remapped_key(
    control_plane: ControlPlaneProcess, worker: StartWorker, tmp_path: Path
) -> None:
    stub = control_plane.stub
    register(stub, three_steps("jumped"))
    register(stub, three_steps("other"))
    worker()
    runs = [start_run(stub, name, DECLINE_B) for name in ("jumped", "other")]
    for run_id in runs:
        wait_for_status(stub, run_id, "NEEDS_ATTENTION")
    config = tmp_path / "console.toml"
    config.write_text('[keys]\n"dead_letter.retry" = "t"\n')
    keymap = read_keymap(config, required=True)

    async def scenario() -> None:
        app = SurefootConsole(ControlPlane(control_plane.address, "default"), keymap)
        shown = notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("colon", *"nowhere", "enter")
            await until(pilot, lambda: shown, "refused")
            assert shown[-1].startswith("no view named 'nowhere'"), shown
            await pilot.press("colon", *"work", "enter")  # a unique prefix is enough
            await until(pilot, lambda: isinstance(app.screen, WorkersScreen), "workers")
            await pilot.press("colon", *"dlq", "enter")
            await until(pilot, lambda: isinstance(app.screen, DeadLettersScreen), "dlq")
            assert len(app.screen_stack) == 2, "a view replaces the view above the runs"
            groups = app.screen.query_one("#groups", PagedTable)
            await until(pilot, lambda: len(groups.keys) == 2, "two groups")

            # / with a term the server filters by, then free text on what is shown.
            await pilot.press("slash", *"workflow:jumped", "enter")
            await until(pilot, lambda: len(groups.keys) == 1, "filtered by workflow")
            assert groups.table.cells(groups.keys[0])[1] == "jumped@1"
            await pilot.press("slash", "ctrl+u", *"status:", "enter")
            await until(pilot, lambda: "status: needs a value" in shown[-1], "bad filter")

            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, GroupScreen), "opened")
            items = app.screen.query_one("#items", PagedTable)
            await until(pilot, lambda: items.keys, "listed")
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, GroupScreen), "r is t now"
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, CommentModal), "t retries")
            await pilot.press("escape")
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, RedriveModal), "other keys stay")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[keys\n", "not TOML"),
        ('[keys]\n"dead_letter.nope" = "t"\n', "unknown action 'dead_letter.nope'"),
        ('[keys]\n"dead_letter.retry" = 3\n', "must be a key name"),
    ],
)
def test_a_bad_console_config_is_one_line_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "console.toml"
    config.write_text(text)
    with pytest.raises(KeymapError) as refused:
        read_keymap(config)
    assert str(refused.value).startswith(f"{config}: ") and message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert read_keymap(tmp_path / "missing.toml") == {}
    with pytest.raises(KeymapError):
        read_keymap(tmp_path / "missing.toml", required=True)
