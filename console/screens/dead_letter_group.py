"""One dead-letter group: what its failures share, and its dead letters a page at a time.

The header is the group in full (signature, count, first and last seen, idempotency); the
list is its dead letters, oldest first, "n of COUNT". enter opens one; r, e, s, c act on the
one under the cursor; R redrives the whole group. On a wide terminal the dead letter under
the cursor is shown in full beside the list.
"""

from __future__ import annotations

from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import DataTable, Static

from console import keys
from console.client import ControlPlane, Page
from console.filtering import Query
from console.footer import KeyFooter
from console.paged_table import PagedTable
from console.render_incident import (
    ITEM_COLUMNS,
    dead_letter_details,
    dead_letter_key,
    group_details,
    group_key,
    item_row,
)
from console.screens.dead_letters import SIDE_CSS, open_redrive
from console.screens.polling import ConnectionLine
from console.screens.triage import TRIAGE_KEYS, TriageScreen


class GroupScreen(TriageScreen):
    BINDINGS = keys.bindings("dead_letter.open", *TRIAGE_KEYS, "dead_letters.redrive")
    DEFAULT_CSS = (
        SIDE_CSS.replace("{screen}", "GroupScreen")
        + """
    GroupScreen #group { height: auto; padding: 0 1; background: $boost; }
    GroupScreen #details { display: none; }
    GroupScreen.-wide #details { display: block; }
    """
    )

    def __init__(self, control_plane: ControlPlane, group: ws.DeadLetterGroup) -> None:
        super().__init__(control_plane)
        self.group = group
        self._key = group_key(group)
        self.group_gone = False

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield Static(group_details(self.group), id="group", markup=False)
        with Container(id="body"):
            yield PagedTable(
                ITEM_COLUMNS,
                self._load,
                key=dead_letter_key,
                row=item_row,
                noun="dead letters",
                id="items",
            )
            yield Static("", id="details", markup=False)
        yield KeyFooter(compact=True)

    @property
    def items(self) -> PagedTable[ws.DeadLetter]:
        return self.query_one("#items", PagedTable)

    def on_mount(self) -> None:
        self.sub_title = f"group {self.group.step_type}"
        self.items.set_total(self.group.count)
        self.items.focus()
        super().on_mount()

    async def _load(self, token: str, size: int) -> Page:
        page = await self.control_plane.dead_letters(self.group.filter, token, size)
        return Page(page.items, page.next_token, self.group.count)

    async def poll(self) -> None:
        # The group again (its count, its last seen), then its dead letters.
        page = await self.attempt(
            self.control_plane.dead_letter_groups(self.group.filter), polling=True
        )
        if page is not None:
            same = [g for g in page.items if group_key(g) == self._key]
            if same:
                self.group = same[0]
            else:
                self.group.count = 0
            self.group_gone = not same
            text = group_details(self.group)
            if self.group_gone:
                text = "no dead letter left in this group (redriven or resolved)\n" + text
            self.query_one("#group", Static).update(text)
        await self.attempt(self.items.reload(), polling=True)
        self._show_details()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def _show_details(self) -> None:
        dead_letter = self.items.selected_item
        text = dead_letter_details(dead_letter, None) if dead_letter is not None else ""
        self.query_one("#details", Static).update(text)

    def apply_query(self, query: Query) -> None:
        if query.statuses or query.workflow or query.step:
            self.say("a group has one workflow and step: only free text filters here")
        self.items.set_text_filter(Query(text=query.text))

    def target(self) -> ws.DeadLetter | None:
        dead_letter = self.items.selected_item
        if dead_letter is None:
            gone = self.items.vanished_key
            if gone is not None:
                self.say(
                    f"{gone} is no longer a dead letter (retried or resolved elsewhere): "
                    "nothing done; move the cursor to pick another",
                    severity="warning",
                )
            else:
                self.say("no dead letter selected", severity="warning")
        return dead_letter

    def action_open(self) -> None:
        if (dead_letter := self.target()) is not None:
            from console.screens.dead_letter_item import DeadLetterScreen

            self.app.push_screen(DeadLetterScreen(self.control_plane, dead_letter))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_redrive(self) -> None:
        if self.group_gone:
            self.say("nothing left to redrive in this group", severity="warning")
            return
        open_redrive(self, self.group)
