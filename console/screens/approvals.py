"""The approvals inbox: what the signed-in principal may decide, with exactly what it shows.

The inbox asks for the approvals naming the principal or one of its groups (WhoAmI says
which); on a server without credentials (dev, --no-auth) every pending approval. "No pending
approval" is said only when the server answered so: while it cannot be asked, the screen
says it does not know.
"""

from __future__ import annotations

from surefoot.v1 import approval_pb2
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from console import keys
from console.client import ConsoleError, ControlPlane, Page, Unreachable
from console.filtering import Query
from console.footer import KeyFooter
from console.modals import CommentModal, JsonModal
from console.paged_table import PagedTable
from console.render import APPROVAL_COLUMNS, approval_details, approval_row
from console.render_ai import output_draft
from console.run_details import value_of
from console.screens.polling import ConnectionLine, PollingScreen
from controlplane.audit.content import shown_hash


class ApprovalsScreen(PollingScreen):
    BINDINGS = keys.bindings(
        "approvals.approve",
        "approvals.approve_output",
        "approvals.reject",
        "approvals.open_run",
    )
    DEFAULT_CSS = """
    ApprovalsScreen #inbox { height: 1; padding: 0 1; background: $boost; }
    ApprovalsScreen #inbox.unknown { background: $error; color: $text; }
    ApprovalsScreen #approvals { height: 1fr; max-height: 50%; }
    ApprovalsScreen #shown { height: 1fr; border-top: solid $accent; padding: 0 1; }
    """

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        # Why the inbox is unknown ("" once the server answered).
        self.unknown = "not asked yet"

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield Static("asking the control plane…", id="inbox", markup=False)
        yield PagedTable(
            APPROVAL_COLUMNS,
            self._load,
            key=lambda approval: approval.id,
            row=approval_row,
            noun="pending",
            page_size=200,
            id="approvals",
        )
        yield Static("", id="shown", markup=False)
        yield KeyFooter(compact=True)

    @property
    def approvals(self) -> PagedTable[approval_pb2.Approval]:
        return self.query_one("#approvals", PagedTable)

    def on_mount(self) -> None:
        self.sub_title = "approvals"
        self.approvals.focus()
        super().on_mount()

    def _approver(self) -> str:
        identity = self.control_plane.identity
        if identity is None or identity.source != "credential":
            return ""
        return identity.principal

    async def _load(self, token: str, size: int) -> Page:
        return await self.control_plane.pending_approvals(self._approver(), token)

    async def poll(self) -> None:
        try:
            if self.control_plane.identity is None:
                await self.control_plane.who_am_i()
            await self.approvals.reload()
        except Unreachable as exc:
            self.unknown = str(exc)
        except ConsoleError as exc:
            self.unknown = str(exc)
            await self.attempt(_raise(exc), polling=True)
        else:
            self.unknown = ""
        self.show_header()
        self._show_inbox()
        self._show_selected()

    def _show_inbox(self) -> None:
        inbox = self.query_one("#inbox", Static)
        identity = self.control_plane.identity
        if identity is None or identity.source != "credential":
            whose = "every pending approval (this server has no credentials)"
        else:
            groups = f" and groups {', '.join(identity.groups)}" if identity.groups else ""
            whose = f"yours to decide: {identity.principal}{groups}"
        if self.unknown:
            shown = " (last known list below)" if self.approvals.keys else ""
            inbox.update(f"cannot tell what is pending{shown}: {self.unknown}")
        else:
            inbox.update(f"{len(self.approvals.keys)} pending · {whose}")
        inbox.set_class(bool(self.unknown), "unknown")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        approval = self.approvals.selected_item
        if approval is not None:
            text = approval_details(approval)
        elif self.unknown:
            text = "pending approvals unknown until the control plane answers"
        elif not self.approvals.keys:
            text = "no pending approval"
        else:
            text = ""
        self.query_one("#shown", Static).update(text)

    def apply_query(self, query: Query) -> None:
        self.approvals.set_text_filter(query)

    def _selected(self) -> approval_pb2.Approval | None:
        approval = self.approvals.selected_item
        if approval is None:
            gone = self.approvals.vanished_key
            message = (
                f"{gone} is no longer pending (decided or withdrawn): nothing done"
                if gone
                else "no approval selected"
            )
            self.say(message, severity="warning")
        return approval

    def action_decide(self, approve: bool) -> None:
        approval = self._selected()
        if approval is None:
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
        self.app.push_screen(
            CommentModal(f"{verb} {approval.title or approval.id}: comment"), decide
        )

    def action_approve_output(self) -> None:
        """Approve with the output the step takes (an AI step's human review): the JSON is
        checked against the node's schema by the server, which refuses it otherwise."""
        approval = self._selected()
        if approval is None:
            return

        async def decide(output: str | None) -> None:
            if output is None:
                return
            call = self.control_plane.decide_approval(
                approval.id, True, "", shown_hash(approval), output=output
            )
            if (decided := await self.attempt(call)) is not None:
                self.say(f"approved {decided.id} with an output as {decided.decided_by}")
                self.refresh_now()

        title = f"Approve {approval.title or approval.id} with this output (JSON)"
        draft = output_draft(value_of(approval.shown))
        self.app.push_screen(JsonModal(title, draft), decide)

    def action_open_run(self) -> None:
        if (approval := self._selected()) is not None:
            from console.screens.run import RunScreen

            self.app.push_screen(RunScreen(self.control_plane, approval.run_id))


async def _raise(exc: Exception) -> None:
    raise exc
