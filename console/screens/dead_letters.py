"""Dead letters as an incident: groups first (4,000 identical failures are one row).

enter opens a group's dead letters, `R` redrives the group (dry run first), `o` lists the
operations. The group under the cursor is shown in full beside the list on a wide terminal,
under it on a narrow one.
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import DataTable, Static

from console import keys
from console.client import ControlPlane, Page
from console.filtering import Query
from console.footer import KeyFooter
from console.paged_table import PagedTable
from console.render_incident import GROUP_COLUMNS, group_details, group_key, group_row
from console.screens.polling import ConnectionLine, PollingScreen
from console.screens.redrive import RedriveModal

SIDE_CSS = """
{screen} #body { height: 1fr; }
{screen} #details { height: auto; max-height: 8; padding: 0 1; border-top: solid $accent; }
{screen}.-wide #body { layout: horizontal; }
{screen}.-wide #details {
    width: 60; height: 1fr; max-height: 100%; border-top: none; border-left: solid $accent;
}
"""


def dead_letter_filter(query: Query) -> ws.DeadLetterFilter:
    """The terms of `/` the server filters dead letters by (workflow, step type)."""
    return ws.DeadLetterFilter(
        workflow_name=query.workflow_name,
        workflow_version=query.workflow_version,
        step_type=query.step,
    )


class DeadLettersScreen(PollingScreen):
    BINDINGS = keys.bindings("dead_letters.open", "dead_letters.redrive", "dead_letters.operations")
    DEFAULT_CSS = SIDE_CSS.replace("{screen}", "DeadLettersScreen")

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self._filter = ws.DeadLetterFilter()

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        with Container(id="body"):
            yield PagedTable(
                GROUP_COLUMNS,
                self._load,
                key=group_key,
                row=group_row,
                noun="groups",
                id="groups",
            )
            yield Static("", id="details", markup=False)
        yield KeyFooter(compact=True)

    @property
    def groups(self) -> PagedTable[ws.DeadLetterGroup]:
        return self.query_one("#groups", PagedTable)

    def on_mount(self) -> None:
        self.sub_title = "dead letters"
        self.groups.focus()
        super().on_mount()

    async def _load(self, token: str, size: int) -> Page:
        return await self.control_plane.dead_letter_groups(self._filter, token, size)

    async def poll(self) -> None:
        await self.attempt(self.groups.reload(), polling=True)
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def _show_details(self) -> None:
        group = self.groups.selected_item
        if group is not None:
            text = group_details(group)
        elif self.groups.loaded and not self.groups.keys:
            text = "no dead letter" + (" matches the filter" if not self.query_text.empty else "")
        else:
            text = ""
        self.query_one("#details", Static).update(text)

    def apply_query(self, query: Query) -> None:
        if query.statuses:
            self.say("dead letters have no status: status: is ignored here", severity="warning")
        self._filter = dead_letter_filter(query)
        self.groups.set_loader(self._load)
        self.groups.set_text_filter(query)
        self.refresh_now()

    def _selected_group(self) -> ws.DeadLetterGroup | None:
        group = self.groups.selected_item
        if group is None:
            gone = self.groups.vanished_key
            self.say(
                "that group is gone (redriven or resolved)" if gone else "no group selected",
                severity="warning",
            )
        return group

    def action_open(self) -> None:
        if (group := self._selected_group()) is not None:
            from console.screens.dead_letter_group import GroupScreen

            self.app.push_screen(GroupScreen(self.control_plane, group))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_redrive(self) -> None:
        if (group := self._selected_group()) is not None:
            open_redrive(self, group)

    def action_operations(self) -> None:
        from console.screens.operations import OperationsScreen

        self.app.push_screen(OperationsScreen(self.control_plane))


def open_redrive(screen: PollingScreen, group: ws.DeadLetterGroup) -> None:
    """The redrive dialog of `group`; once started, the operation's progress panel."""

    def started(operation: opb.Operation | None) -> None:
        if operation is None:
            return
        from console.screens.operations import OperationScreen

        screen.say(f"redrive {operation.id} started: {operation.plan.to_redrive} to retry")
        screen.app.push_screen(OperationScreen(screen.control_plane, operation.id))

    screen.app.push_screen(RedriveModal(screen.control_plane, group), started)
