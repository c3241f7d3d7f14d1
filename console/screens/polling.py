"""What every console screen shares: the connection line and a refresh every second.

A screen refreshes only while it is on top, so nothing moves under a modal where an operator
edits JSON or confirms, and one refresh at a time, so a slow or dead server does not pile
calls up. A failed call is shown, never raised: the console outlives the server.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Static

from console.client import ConsoleError, ControlPlane, Unreachable

POLL_SECONDS = 1.0

T = TypeVar("T")


class ConnectionLine(Static):
    """`address · namespace · connected` (or `unreachable`), at the top of every screen."""

    def show(self, control_plane: ControlPlane) -> None:
        state = {None: "connecting…", True: "connected", False: "unreachable"}
        status = state[control_plane.reachable]
        self.update(f"{control_plane.address} · namespace {control_plane.namespace} · {status}")
        self.set_class(control_plane.reachable is False, "unreachable")


class PollingScreen(Screen[None]):
    """A screen whose `poll()` reloads what it shows, at mount and every second."""

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__()
        self.control_plane = control_plane
        self._polling = False
        self._last_poll_error = ""

    async def poll(self) -> None:
        """Reload from the server; called at most once at a time."""

    def on_mount(self) -> None:
        self.refresh_now()
        self.set_interval(POLL_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        # Back from a modal or from a screen pushed above: show the latest at once.
        self.refresh_now()

    def _tick(self) -> None:
        # `is_current` stays true under a modal (it is drawn behind it); only the top screen
        # refreshes, so the rows do not move while an operator decides about one of them.
        if self.app.screen is self:
            self.refresh_now()

    def refresh_now(self) -> None:
        if not self._polling:
            self._polling = True
            self.run_worker(self._poll_once(), group="poll")

    async def _poll_once(self) -> None:
        try:
            await self.poll()
        except NoMatches:
            # The screen was closed, or the app is exiting, while a call was in flight: its
            # widgets are gone and there is nothing left to show the answer on.
            if self.is_attached:
                raise
        finally:
            self._polling = False

    def say(self, message: str, severity: SeverityLevel = "information") -> None:
        """One notification line; messages hold brackets (JSON, ids) that are not markup."""
        timeout = 8 if severity == "error" else 4
        self.notify(message, severity=severity, timeout=timeout, markup=False)

    async def attempt(self, call: Awaitable[T], *, polling: bool = False) -> T | None:
        """The result of `call`, or None after showing why it failed.

        An unreachable server shows in the connection line; a refusal is one notification
        (while polling, only when it differs from the previous poll's, to not repeat it).
        """
        try:
            result = await call
        except Unreachable:
            result = None
        except ConsoleError as exc:
            message = str(exc)
            if not polling or message != self._last_poll_error:
                self.say(message, severity="error")
            if polling:
                self._last_poll_error = message
            result = None
        else:
            if polling:
                self._last_poll_error = ""
        # query, not query_one: the operator may have left the screen while the call ran.
        for line in self.query(ConnectionLine):
            line.show(self.control_plane)
        return result
