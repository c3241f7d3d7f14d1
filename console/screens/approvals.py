"""Pending approvals, with exactly what the approver is shown, to approve or reject."""

from __future__ import annotations

from surefoot.v1 import approval_pb2
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from console.client import ControlPlane
from console.live_table import LiveTable
from console.modals import CommentModal
from console.render import APPROVAL_COLUMNS, approval_details, approval_row
from console.screens.polling import ConnectionLine, PollingScreen
from controlplane.audit.content import shown_hash


class ApprovalsScreen(PollingScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("y", "decide(True)", "Approve"),
        Binding("x", "decide(False)", "Reject"),
    ]
    DEFAULT_CSS = """
    ApprovalsScreen #approvals { height: auto; max-height: 50%; }
    ApprovalsScreen #shown { height: 1fr; border-top: solid $accent; padding: 0 1; }
    """

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self.approvals: dict[str, approval_pb2.Approval] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield LiveTable(APPROVAL_COLUMNS, id="approvals")
        yield Static("no pending approval", id="shown", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "approvals"
        self.query_one(LiveTable).focus()
        super().on_mount()

    async def poll(self) -> None:
        approvals = await self.attempt(self.control_plane.pending_approvals(), polling=True)
        if approvals is not None:
            self.approvals = {approval.id: approval for approval in approvals}
            rows = [(key, approval_row(approval)) for key, approval in self.approvals.items()]
            self.query_one(LiveTable).show(rows)
            self._show_selected()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        key = self.query_one(LiveTable).selected_key
        approval = self.approvals.get(key) if key else None
        text = approval_details(approval) if approval else "no pending approval"
        self.query_one("#shown", Static).update(text)

    def action_decide(self, approve: bool) -> None:
        key = self.query_one(LiveTable).selected_key
        approval = self.approvals.get(key) if key else None
        if approval is None:
            self.say("no approval selected", severity="warning")
            return

        async def decide(comment: str | None) -> None:
            if comment is None:
                return
            # Bound to what the panel displayed: refused if the approval now shows otherwise.
            call = self.control_plane.decide_approval(
                approval.id, approve, comment, shown_hash(approval)
            )
            if (decided := await self.attempt(call)) is not None:
                verb = "approved" if approve else "rejected"
                self.say(f"{verb} {decided.id} as {decided.decided_by}")
                self.refresh_now()

        verb = "Approve" if approve else "Reject"
        self.app.push_screen(CommentModal(f"{verb} {approval.id}: comment"), decide)
