"""One run: its header, its steps and its history as a live tail."""

from __future__ import annotations

from contextlib import suppress

from rich.text import Text
from surefoot.v1 import audit_service_pb2
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Log, Static

from console.client import ConsoleError, ControlPlane
from console.live_table import LiveTable
from console.render import STEP_COLUMNS, chain_alarm, event_line, run_header, step_row
from console.screens.polling import ConnectionLine, PollingScreen


class RunScreen(PollingScreen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    DEFAULT_CSS = """
    RunScreen #steps { height: auto; max-height: 40%; }
    RunScreen #history { height: 1fr; border-top: solid $accent; }
    """

    def __init__(self, control_plane: ControlPlane, run_id: str) -> None:
        super().__init__(control_plane)
        self.run_id = run_id
        # The history is append-only and gapless: asking for events after the last one
        # shown is a complete tail.
        self.last_seq = 0
        # The verdict on the run's hash chain, checked again whenever new events arrive.
        self.chain: audit_service_pb2.RunVerification | None = None
        self._verified = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Static(f"run {self.run_id}", id="run-header", markup=False)
        yield LiveTable(STEP_COLUMNS, id="steps")
        yield Log(id="history", highlight=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        super().on_mount()

    async def poll(self) -> None:
        run = await self.attempt(self.control_plane.get_run(self.run_id), polling=True)
        if run is None:
            return
        self.query_one(LiveTable).show([(step.node_id, step_row(step)) for step in run.steps])
        events = await self.attempt(
            self.control_plane.history(self.run_id, self.last_seq), polling=True
        )
        if events:
            # A poll that started before the previous one ended could repeat events.
            fresh = [event for event in events if event.seq > self.last_seq]
            self.query_one(Log).write_lines([event_line(event) for event in fresh])
            self.last_seq = max([self.last_seq, *(event.seq for event in fresh)])
        if events or not self._verified:
            self._verified = True
            # No verdict (a server without AuditService) is nothing to alarm about.
            with suppress(ConsoleError):
                self.chain = await self.control_plane.verify_run(self.run_id)
        header = Text(run_header(run))
        if self.chain is not None and not self.chain.ok:
            header.append("\n" + chain_alarm(self.chain), style="bold red")
        self.query_one("#run-header", Static).update(header)
