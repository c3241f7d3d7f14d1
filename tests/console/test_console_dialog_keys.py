"""The inspector's and the dialogs' keys come from the key registry like every other key: a
console.toml remaps them, the remapped key works and the old one no longer does, the button
says the new key, and `?` lists them with the id that remaps them.

On fixed data (the fake RunClient of the run snapshots): what is tested is the keys, not the
server's answers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from textual.widgets import Button

from console.action_prompt import ActionPrompt
from console.help import HelpModal, elsewhere_rows, key_rows
from console.inspector import Inspector
from console.keys import read_keymap
from console.modals import JsonModal
from console.screens.run import RunScreen
from console.trace_table import TraceTable
from tests.console.console_support import until
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp
from tests.console.test_console_run_inspector import aim
from tests.console.test_console_run_snapshots import FLAKY, run_screen


def test_a_remapped_inspector_key_and_dialog_key_work_and_are_listed(tmp_path: Path) -> None:
    config = tmp_path / "console.toml"
    config.write_text('[keys]\n"inspector.copy" = "w"\n"dialog.send" = "ctrl+t"\n')
    keymap = read_keymap(config, required=True)

    async def scenario() -> None:
        app = ScreenApp(FakeControlPlane(), run_screen(FLAKY), keymap)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = app.screen
            assert isinstance(screen, RunScreen)
            table = screen.query_one(TraceTable)
            inspector = screen.query_one(Inspector)
            await until(pilot, lambda: "charge" in table.keys, "the trace")
            table.select("charge")
            await until(pilot, lambda: "input" in inspector.sections, "the step")

            # The inspector: `c` no longer copies, `w` does, and `?` says so.
            await pilot.press("tab")
            assert app.focused is inspector
            await aim(pilot, inspector, ("input",))
            app.copy_to_clipboard("")
            await pilot.press("c")
            assert app.clipboard == "", "the key remapped away still copies"
            await pilot.press("w")
            assert json.loads(app.clipboard) == {"amount": 1250, "customer": "cus_0001"}
            assert ("w", "Copy JSON", "inspector.copy", True) in key_rows(screen)
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpModal), "the help")
            listed = elsewhere_rows(screen, set())
            assert ("ctrl+t", "Send (in a dialog)", "dialog.send") in listed, listed
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "the help closed")

            # The JSON editor of "retry with edited input": ctrl+s no longer sends, ctrl+t does.
            table.focus()
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, JsonModal), "the editor")
            editor = app.screen
            assert str(editor.query_one("#send", Button).label) == "Send ctrl+t"
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert app.screen is editor, "the key remapped away still sends"
            await pilot.press("ctrl+t")
            await until(pilot, lambda: isinstance(app.screen, ActionPrompt), "the comment asked")
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "nothing sent, back on the run")

    asyncio.run(scenario())
