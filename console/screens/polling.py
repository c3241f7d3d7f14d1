"""What every console screen shares: the header line, a refresh every second, the frame keys.

A screen refreshes only while it is on top, so nothing moves under a modal where an operator
edits JSON or confirms, and one refresh at a time, so a slow or dead server does not pile
calls up. A failed call is shown, never raised: the console outlives the server.

The frame keys (`esc` back, `/` filter) are here; a screen with a list to filter
overrides `apply_query`. Actions the key registry declares as writes are disabled on a
read-only console (`check_action`), which shows them greyed in the footer.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Static

from console import keys
from console.client import ConsoleError, ControlPlane, Unreachable
from console.filtering import Query, parse_query
from console.prompt import PromptModal

POLL_SECONDS = 1.0

T = TypeVar("T")


class ConnectionLine(Static):
    """The header: `view │ connected · who (role) · [READ-ONLY] · ns NAMESPACE · address`."""

    DEFAULT_CSS = """
    ConnectionLine { height: 1; padding: 0 1; background: $boost; }
    ConnectionLine.unreachable { background: $error; color: $text; }
    """

    def show(self, control_plane: ControlPlane, title: str = "") -> None:
        # Most needed first: at 80 columns the end of the line (the address) may be cut.
        state = {None: "connecting…", True: "connected", False: "unreachable"}
        parts = [state[control_plane.reachable]]
        identity = control_plane.identity
        if identity is not None:
            who = f"{identity.principal} ({identity.role})"
            if identity.source == "no-auth":
                who = "anonymous (server without auth)"
            elif identity.source == "dev":
                who = f"{identity.principal} (dev: every role)"
            parts.append(who)
        elif control_plane.identity_error and control_plane.reachable:
            parts.append("who: " + control_plane.identity_error.split(":")[0])
        if control_plane.readonly:
            parts.append("READ-ONLY")
        parts += [f"ns {control_plane.namespace}", control_plane.address]
        prefix = f"{title} │ " if title else ""
        self.update(prefix + " · ".join(parts))
        self.set_class(control_plane.reachable is False, "unreachable")


class PollingScreen(Screen[None]):
    """A screen whose `poll()` reloads what it shows, at mount and every second."""

    BINDINGS = keys.bindings("screen.back", "screen.filter")

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__()
        self.control_plane = control_plane
        self.query_text = Query()
        self._polling = False
        self._last_poll_error = ""
        # Refreshes finished: a test (or a snapshot) waits for the first before looking.
        self.polls_done = 0

    async def poll(self) -> None:
        """Reload from the server; called at most once at a time."""

    def on_mount(self) -> None:
        self.show_header()
        self.refresh_now()
        self.set_interval(POLL_SECONDS, self._tick)

    def on_screen_resume(self) -> None:
        # Back from a modal or from a screen pushed above: show the latest at once.
        self.show_header()
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
            self.polls_done += 1
        except NoMatches:
            # The screen was closed, or the app is exiting, while a call was in flight: its
            # widgets are gone (or going) and there is nothing left to show the answer on.
            if self.is_attached and self in self.app.screen_stack:
                raise
        finally:
            self._polling = False

    def say(self, message: str, severity: SeverityLevel = "information") -> None:
        """One notification line; messages hold brackets (JSON, ids) that are not markup."""
        timeout = 8 if severity == "error" else 4
        self.notify(message, severity=severity, timeout=timeout, markup=False)

    async def attempt(self, call: Awaitable[T], *, polling: bool = False) -> T | None:
        """The result of `call`, or None after showing why it failed.

        An unreachable server shows in the header; a refusal is one notification (while
        polling, only when it differs from the previous poll's, to not repeat it).
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
        self.show_header()
        return result

    def show_header(self) -> None:
        # query, not query_one: the operator may have left the screen while the call ran.
        for line in self.query(ConnectionLine):
            line.show(self.control_plane, self.sub_title or "")

    # -- the frame's keys ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # None: shown disabled (greyed) in the footer, and the key does nothing.
        if self.control_plane.readonly and keys.writes(action):
            return None
        return True

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_filter_prompt(self) -> None:
        def apply(typed: str | None) -> None:
            if typed is None:
                return
            try:
                query = parse_query(typed)
            except ValueError as exc:
                self.say(str(exc), severity="error")
                return
            self.query_text = query
            self.apply_query(query)

        hint = "free text · status:needs_attention,waiting · workflow:NAME[@V] · step:TYPE"
        self.app.push_screen(PromptModal("/", str(self.query_text), hint=hint), apply)

    def apply_query(self, query: Query) -> None:
        """Filter what the screen lists; screens with a list override it."""
        self.say("nothing to filter on this screen", severity="warning")
