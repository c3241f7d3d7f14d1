"""The first screen: every run of the namespace, newest first, filtered by status."""

from __future__ import annotations

from surefoot.v1 import run_pb2
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.client import ControlPlane
from console.live_table import LiveTable
from console.render import RUN_COLUMNS, run_row
from console.screens.polling import ConnectionLine, PollingScreen
from console.screens.run import RunScreen

# Filter name -> the statuses ListRuns is asked for (none: all).
FILTERS: dict[str, tuple[run_pb2.RunStatus.ValueType, ...]] = {
    "all": (),
    "needs attention": (run_pb2.RUN_STATUS_NEEDS_ATTENTION,),
    "waiting": (run_pb2.RUN_STATUS_WAITING,),
}


class RunsScreen(PollingScreen):
    BINDINGS = [
        Binding("n", "filter('needs attention')", "Needs attention"),
        Binding("w", "filter('waiting')", "Waiting"),
        Binding("a", "filter('all')", "All"),
    ]

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self.status_filter = "all"

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Static(id="filter")
        yield LiveTable(RUN_COLUMNS, id="runs")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        self._show_filter()
        self.query_one(LiveTable).focus()
        super().on_mount()

    async def poll(self) -> None:
        statuses = FILTERS[self.status_filter]
        runs = await self.attempt(self.control_plane.list_runs(statuses), polling=True)
        if runs is not None and FILTERS[self.status_filter] == statuses:
            self.query_one(LiveTable).show([(run.id, run_row(run)) for run in runs])

    def action_filter(self, name: str) -> None:
        self.status_filter = name
        self._show_filter()
        self.refresh_now()

    def _show_filter(self) -> None:
        self.query_one("#filter", Static).update(
            f"runs: {self.status_filter}   (n needs attention · w waiting · a all · "
            "enter opens · d dead letters · p approvals)"
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.app.push_screen(RunScreen(self.control_plane, event.row_key.value))
