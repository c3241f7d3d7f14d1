"""Helpers of the console tests: the app, headless, and waiting on what it shows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.pilot import Pilot
from textual.widgets import Static

from console.app import SurefootConsole
from console.client import ControlPlane
from tests.support.eventually import assert_eventually_async

T = TypeVar("T")
# Generous: a loaded 2-core machine runs a control plane, workers and the app at once.
DEADLINE_SECONDS = 30.0
SIZE = (160, 48)


def console(address: str, token: str = "") -> SurefootConsole:
    return SurefootConsole(ControlPlane(address, "default", token))


async def until(
    pilot: Pilot[None], condition: Callable[[], T], message: str, timeout: float = DEADLINE_SECONDS
) -> T:
    """The first truthy value of `condition`, letting the app run between two checks.

    The app's own refreshes (every second) are what the test waits for, so the loop yields
    to them instead of sleeping a guessed time.
    """
    return await assert_eventually_async(condition, timeout, message=message, pause=pilot.pause)


def notifications(app: SurefootConsole) -> list[str]:
    """Every notification the app shows from now on, in order (a refusal is one of them)."""
    shown: list[str] = []
    notify = app.notify

    def record(message: str, **options: object) -> None:
        shown.append(message)
        notify(message, **options)  # type: ignore[arg-type]

    app.notify = record  # type: ignore[method-assign]
    return shown


def text_of(app: SurefootConsole, selector: str) -> str:
    """What a Static of the current screen shows."""
    return str(app.screen.query_one(selector, Static).content)
