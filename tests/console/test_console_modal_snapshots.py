"""The console's dialogs, at 80×24 and 160×48: the comment before a dead letter's retry, the
yes/no before an abandon, a definition (and a diff of two) as read-only text.

Each scene is compared with its stored SVG (pytest-textual-snapshot; `--snapshot-update`
stores new ones after a look at them), and what an operator needs in the dialog is asserted
on screen at 80×24, not left to the eye: the error type the action is about, the buttons and
the key hints, each inside the terminal and not clipped by the dialog.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget

from console.action_prompt import ActionPrompt
from console.client import ControlPlane
from console.modals import CommentModal, ConfirmModal, JsonModal, TextModal
from console.screens.definitions import DefinitionsScreen
from tests.console.fake_control_plane import FakeControlPlane, ScreenApp
from tests.console.test_console_run_snapshots import SAGA, on_run, run_screen
from tests.console.test_console_snapshots import dead_letter_screen, loaded, on_top, steps

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


@dataclass(frozen=True)
class Scene:
    """A dialog opened from a screen, and what of it must be on screen.

    Attributes:
        first: The screen the console starts on.
        open: Brings the dialog up (keys pressed, waited for).
        texts: Words that must be drawn whole (the error type, a key hint).
        widgets: Selectors of the dialog's widgets that must be fully inside the terminal.
    """

    first: Callable[[ControlPlane], Screen[None]]
    open: Callable[[Pilot[None]], Awaitable[None]]
    texts: tuple[str, ...]
    widgets: tuple[str, ...]


def definitions(*keys: str, then: type[Screen[Any]]) -> Callable[[Pilot[None]], Awaitable[None]]:
    """The definitions listed, the cursor on checkout@3 (the newest), `keys` pressed."""

    async def run(pilot: Pilot[None]) -> None:
        await loaded(pilot)
        await pilot.press("down", "down", *keys)
        await on_top(pilot, then)

    return run


# The snapshots of this file; the fit is asserted for these and for the dialogs pictured in
# the other snapshot files (FITS below).
SCENES: dict[str, Scene] = {
    "dead_letter_retry_comment": Scene(
        dead_letter_screen,
        steps("r", then=CommentModal),
        ("PaymentUnavailable", "run-0000", "esc cancels", "enter sends"),
        ("#comment", ".hint"),
    ),
    "dead_letter_abandon_confirm": Scene(
        dead_letter_screen,
        steps("c", then=ConfirmModal),
        ("Abandon run run-0000", "PaymentUnavailable", "No n", "Yes y"),
        ("#no", "#yes"),
    ),
    "definition_diff": Scene(
        DefinitionsScreen,
        definitions("f", then=TextModal),
        ("diff checkout@2 → checkout@3", "esc closes", "+ node notify"),
        ("Static", "#text"),
    ),
    "definition_show": Scene(
        DefinitionsScreen,
        definitions("enter", then=TextModal),
        ("checkout@3", "esc closes", "step_type: reserve-stock"),
        ("Static", "#text"),
    ),
}
FITS: dict[str, Scene] = {
    **SCENES,
    "retry_edited_input": Scene(
        dead_letter_screen,
        steps("e", then=JsonModal),
        ("Retry charge of run-0000", "Send ctrl+s", "Cancel esc"),
        ("#json", "#send", "#cancel"),
    ),
    "run_cancel_prompt": Scene(
        run_screen(SAGA),
        on_run("x", then=ActionPrompt),
        (SAGA, "No esc", "Yes y"),
        ("#comment", "#no", "#yes"),
    ),
}


BORDER = re.compile("[\u2500-\u259f]")  # box drawing and block elements


def dialog_text(screen: Screen[Any]) -> str:
    """What the terminal shows inside the dialog's box, line by line: the screen below (drawn
    around the box, and saying the same error) is left out."""
    box = screen.find_widget(screen.query(".dialog").first()).region
    # The compositor's strips are exactly what the terminal is sent.
    lines = screen._compositor.render_strips()[box.y : box.bottom]
    return "\n".join(line.crop(box.x, box.right).text for line in lines)


def shown_whole(screen: Screen[Any], widget: Widget) -> bool:
    """The widget is inside the terminal and nothing of it is clipped away."""
    geometry = screen.find_widget(widget)
    terminal = Region(0, 0, *screen.app.size)
    return (
        bool(geometry.region)
        and terminal.contains_region(geometry.region)
        and geometry.clip.contains_region(geometry.region)
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("scene", list(SCENES))
def test_dialog_snapshot(snap_compare: Any, scene: str, size: tuple[int, int]) -> None:
    app = ScreenApp(FakeControlPlane(), SCENES[scene].first)
    assert snap_compare(app, terminal_size=size, run_before=SCENES[scene].open)


@pytest.mark.parametrize("scene", list(FITS))
def test_what_a_dialog_needs_is_on_screen_at_80x24(scene: str) -> None:
    wanted = FITS[scene]

    async def scenario() -> None:
        app = ScreenApp(FakeControlPlane(), wanted.first)
        async with app.run_test(size=(80, 24)) as pilot:
            await wanted.open(pilot)
            dialog = app.screen
            await pilot.pause()
            drawn = dialog_text(dialog)
            # The dialog's lines without its border, as one text: a phrase wrapped onto two
            # lines is still found, a word cut by the dialog's edge is not.
            flat = " ".join(BORDER.sub(" ", drawn).split())
            missing = [text for text in wanted.texts if text not in flat]
            assert not missing, f"not on screen at 80x24: {missing}\n{drawn}"
            for selector in wanted.widgets:
                widget = dialog.query(selector).first()
                assert shown_whole(dialog, widget), f"{selector} cut at 80x24\n{drawn}"

    asyncio.run(scenario())
