"""The Surefoot console: a terminal app an operator triages an incident with.

It is a pure client of the control plane's WorkflowService (runs, history, dead letters,
approvals); every change it makes is an API call made as the holder of its bearer token.
"""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from console.client import ControlPlane
from console.modals import MODAL_CSS
from console.screens.approvals import ApprovalsScreen
from console.screens.dead_letters import DeadLettersScreen
from console.screens.runs import RunsScreen
from controlplane.cli.channels import Connection

CSS = (
    MODAL_CSS
    + """
ConnectionLine { height: 1; padding: 0 1; background: $boost; }
ConnectionLine.unreachable { background: $error; color: $text; }
#filter { height: 1; padding: 0 1; }
"""
)


class SurefootConsole(App[None]):
    TITLE = "Surefoot"
    CSS = CSS
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("d", "dead_letters", "Dead letters"),
        Binding("p", "approvals", "Approvals"),
    ]

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__()
        self.control_plane = control_plane

    def get_default_screen(self) -> Screen[None]:
        return RunsScreen(self.control_plane)

    def action_dead_letters(self) -> None:
        if not isinstance(self.screen, DeadLettersScreen):
            self._show(DeadLettersScreen(self.control_plane))

    def action_approvals(self) -> None:
        if not isinstance(self.screen, ApprovalsScreen):
            self._show(ApprovalsScreen(self.control_plane))

    def _show(self, screen: Screen[None]) -> None:
        # Above the runs screen, a view replaces the one shown rather than piling up, so
        # escape always leads back to the runs.
        if len(self.screen_stack) > 1:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def on_unmount(self) -> None:
        self.control_plane.close()


def run_console(connection: Connection | str, namespace: str, token: str = "") -> int:
    """Runs the console until the operator quits; returns the exit code."""
    SurefootConsole(ControlPlane(connection, namespace, token)).run()
    return 0
