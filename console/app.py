"""The Surefoot console: a terminal app an operator triages an incident with.

It is a pure client of the control plane (runs, history, dead letters, operations,
approvals, workers, definitions); every change it makes is an API call made as the holder of
its credential, which the header names (WhoAmI).

Everywhere: `?` lists the screen's keys, `:` jumps to a view (`:dlq`, `:run ID`), `/`
filters the list, `esc` goes back. Keys come from console/keys.py and can be remapped in
~/.config/surefoot/console.toml.

A screen is reachable with `:` once registered below, one line each:

    destinations.register(NAME, lambda cp, arg: Screen(cp, ...), DESCRIPTION, aliases=(...))
"""

from __future__ import annotations

from textual.app import App
from textual.screen import Screen

from console import keys
from console.client import ConsoleError, ControlPlane
from console.help import HelpModal
from console.modals import MODAL_CSS
from console.navigation import destinations
from console.prompt import PromptModal
from console.screens.approvals import ApprovalsScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.definitions import DefinitionsScreen
from console.screens.operations import OperationsScreen
from console.screens.replay import ReplayScreen
from console.screens.run import RunScreen
from console.screens.runs import RunsScreen
from console.screens.workers import WorkersScreen
from controlplane.cli.channels import Connection

CSS = (
    MODAL_CSS
    + """
#filter { height: 1; padding: 0 1; }
"""
)

destinations.register("runs", lambda cp, arg: RunsScreen(cp), "every run", home=True)
destinations.register(
    "run", lambda cp, arg: RunScreen(cp, arg), "one run: its steps and history", argument="ID"
)
destinations.register(
    "dlq",
    lambda cp, arg: DeadLettersScreen(cp),
    "dead letters, grouped by incident",
    aliases=("deadletters", "dead-letters", "dead_letters"),
)
destinations.register(
    "operations",
    lambda cp, arg: OperationsScreen(cp),
    "redrives and bulk actions",
    aliases=("ops",),
)
destinations.register(
    "replay", lambda cp, arg: ReplayScreen(cp, arg), "a run event by event", argument="ID"
)
destinations.register("approvals", lambda cp, arg: ApprovalsScreen(cp), "approvals to decide")
destinations.register("workers", lambda cp, arg: WorkersScreen(cp), "connected workers, queues")
destinations.register(
    "definitions", lambda cp, arg: DefinitionsScreen(cp), "workflow versions", aliases=("defs",)
)


class SurefootConsole(App[None]):
    TITLE = "Surefoot"
    CSS = CSS
    # `:` is the console's palette; Textual's own (ctrl+p) would be a second, different one.
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]
    BINDINGS = keys.bindings(
        "app.help", "app.jump", "app.quit", "app.dead_letters", "app.approvals"
    )

    def __init__(self, control_plane: ControlPlane, keymap: dict[str, str] | None = None) -> None:
        super().__init__()
        self.control_plane = control_plane
        self._initial_keymap = keymap or {}

    def get_default_screen(self) -> Screen[None]:
        home = destinations.home
        assert home is not None, "no destination registered as home"
        return home.open(self.control_plane, "")

    def on_mount(self) -> None:
        if self._initial_keymap:
            self.set_keymap(self._initial_keymap)
        self.run_worker(self._learn_identity(), group="identity")

    async def _learn_identity(self) -> None:
        # Asked until it is known: a console started before its server learns it on connect.
        while self.control_plane.identity is None:
            try:
                await self.control_plane.who_am_i()
            except ConsoleError:
                pass
            else:
                break
            finally:
                show = getattr(self.screen, "show_header", None)
                if show is not None:
                    show()
            await _pause(2.0)

    # -- frame actions --------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpModal):
            self.push_screen(HelpModal(self.screen))

    def action_jump(self) -> None:
        def jump(typed: str | None) -> None:
            if typed:
                self.go(typed)

        prompt = PromptModal(":", hint=destinations.hint(), suggestions=destinations.suggestions())
        self.push_screen(prompt, jump)

    def action_go(self, typed: str) -> None:
        self.go(typed)

    def go(self, typed: str) -> None:
        """Opens what `:typed` names, or says in one line why not."""
        try:
            destination, argument = destinations.resolve(typed)
        except ValueError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if destination.argument:
            # An item opens over what is shown: esc comes back to it.
            self.push_screen(destination.open(self.control_plane, argument))
            return
        screen = destination.open(self.control_plane, argument)
        if type(self.screen) is type(screen) and len(self.screen_stack) > 1:
            return
        # A view replaces the views above the first screen, so esc always leads back to it.
        while len(self.screen_stack) > 1:
            self.pop_screen()
        if not destination.home:
            self.push_screen(screen)

    def on_unmount(self) -> None:
        self.control_plane.close()


async def _pause(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def run_console(
    connection: Connection | str,
    namespace: str,
    token: str = "",
    *,
    readonly: bool = False,
    keymap: dict[str, str] | None = None,
) -> int:
    """Runs the console until the operator quits; returns the exit code."""
    control_plane = ControlPlane(connection, namespace, token, readonly=readonly)
    SurefootConsole(control_plane, keymap).run()
    return 0
