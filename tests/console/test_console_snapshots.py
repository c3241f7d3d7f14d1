"""What each screen of the incident flow, approvals, workers and definitions draws, at 80×24
and 160×48, compared with the stored SVG (pytest-textual-snapshot; `--snapshot-update`
stores new ones after a look at the report).

The screens read a fake control plane with fixed times, ids and counts, so a picture changes
only when the console's drawing does. That nothing needed is cut at 80×24 is checked by eye
once, then held by these pictures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Input, TextArea

from console.client import ControlPlane
from console.help import HelpModal
from console.modals import JsonModal
from console.paged_table import PagedTable
from console.prompt import PromptModal
from console.screens.approvals import ApprovalsScreen
from console.screens.dead_letter_group import GroupScreen
from console.screens.dead_letter_item import DeadLetterScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.definitions import DefinitionsScreen
from console.screens.operations import OperationScreen, OperationsScreen
from console.screens.polling import PollingScreen
from console.screens.redrive import RedriveModal
from console.screens.workers import WorkersScreen
from tests.console.console_support import until
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


async def loaded(pilot: Pilot[None]) -> None:
    """Every list of the screen on top has its first page, and no cursor blinks."""

    def ready() -> bool:
        screen = pilot.app.screen
        tables = screen.query(PagedTable)
        polled = not isinstance(screen, PollingScreen) or screen.polls_done > 0
        return polled and all(table.loaded for table in tables) and screen.is_attached

    await until(pilot, ready, "the screen's lists loaded")
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    for area in pilot.app.screen.query(TextArea):
        area.cursor_blink = False
    await pilot.pause()


async def on_top(pilot: Pilot[None], kind: type[Screen[Any]]) -> None:
    await until(pilot, lambda: isinstance(pilot.app.screen, kind), f"{kind.__name__} shown")
    await loaded(pilot)


def steps(*keys: str, then: type[Screen[Any]]) -> Callable[[Pilot[None]], Awaitable[None]]:
    """Wait for the first screen, press `keys`, wait for `then` on top."""

    async def run(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        if keys:
            await pilot.press(*keys)
        await on_top(pilot, then)

    return run


def dead_letter_screen(control_plane: ControlPlane) -> Screen[None]:
    return DeadLetterScreen(control_plane, _first_dead_letter())


def _first_dead_letter() -> Any:
    from tests.console.fake_control_plane import dead_letter

    return dead_letter(0)


def group_screen(control_plane: ControlPlane) -> Screen[None]:
    from tests.console.fake_control_plane import GROUPS

    return GroupScreen(control_plane, GROUPS[0])


async def redrive_at_50(pilot: Pilot[None]) -> None:
    await loaded(pilot)
    await pilot.press("R")
    await on_top(pilot, RedriveModal)
    await pilot.press("5", "0", "tab", *"INC-42")
    await until(pilot, lambda: "at 50/s" in str(pilot.app.screen.query_one("#plan").render()), "")


SCENES: dict[str, tuple[Callable[[ControlPlane], Screen[None]], Any]] = {
    "dead_letter_groups": (DeadLettersScreen, steps(then=DeadLettersScreen)),
    "dead_letter_group": (group_screen, steps(then=GroupScreen)),
    "dead_letter": (dead_letter_screen, steps(then=DeadLetterScreen)),
    "redrive_dialog": (DeadLettersScreen, redrive_at_50),
    "retry_edited_input": (dead_letter_screen, steps("e", then=JsonModal)),
    "operations": (OperationsScreen, steps(then=OperationsScreen)),
    "operation_progress": (
        lambda cp: OperationScreen(cp, "op-5d2a"),
        steps(then=OperationScreen),
    ),
    "approvals": (ApprovalsScreen, steps(then=ApprovalsScreen)),
    "workers": (WorkersScreen, steps(then=WorkersScreen)),
    "definitions": (DefinitionsScreen, steps(then=DefinitionsScreen)),
    "keys_help": (group_screen, steps("question_mark", then=HelpModal)),
    "jump_prompt": (DeadLettersScreen, steps("colon", *"wor", then=PromptModal)),
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scene", list(SCENES))
def test_screen_snapshot(snap_compare: Any, scene: str, size: tuple[int, int]) -> None:
    first, run_before = SCENES[scene]
    app = ScreenApp(FakeControlPlane(), first)
    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_read_only_snapshot(snap_compare: Any, size: tuple[int, int]) -> None:
    """READ-ONLY in the header, the changes greyed in the footer."""
    app = ScreenApp(FakeControlPlane(readonly=True), group_screen)
    assert snap_compare(app, terminal_size=size, run_before=steps(then=GroupScreen))
