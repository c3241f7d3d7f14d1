"""Dead letters: the incident as groups, and each dead letter to retry, edit, skip or abandon.

`r`, `e`, `s` and `c` act on the dead letter under the cursor of the list, `R` on the group
under the cursor of the groups table, whichever table has the focus (tab moves it).
"""

from __future__ import annotations

from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Label

from console.client import ControlPlane
from console.live_table import LiveTable
from console.modals import ConfirmModal, JsonModal
from console.render import (
    DEAD_LETTER_COLUMNS,
    GROUP_COLUMNS,
    dead_letter_key,
    dead_letter_row,
    group_key,
    group_row,
    run_status,
    step_input,
)
from console.screens.polling import ConnectionLine, PollingScreen


class DeadLettersScreen(PollingScreen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "retry", "Retry"),
        Binding("e", "retry_edited", "Retry with edited input"),
        Binding("s", "skip", "Skip"),
        Binding("c", "abandon", "Abandon"),
        Binding("R", "redrive", "Redrive group"),
    ]
    DEFAULT_CSS = """
    DeadLettersScreen #groups { height: auto; max-height: 35%; }
    DeadLettersScreen #dead-letters { height: 1fr; }
    """

    def __init__(self, control_plane: ControlPlane) -> None:
        super().__init__(control_plane)
        self.dead_letters: dict[str, ws.DeadLetter] = {}
        self.groups: dict[str, ws.DeadLetterGroup] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Label("groups (R redrives the group)")
        yield LiveTable(GROUP_COLUMNS, id="groups")
        yield Label("dead letters, oldest first (r retry · e edit input · s skip · c abandon)")
        yield LiveTable(DEAD_LETTER_COLUMNS, id="dead-letters")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "dead letters"
        self.query_one("#dead-letters", LiveTable).focus()
        super().on_mount()

    async def poll(self) -> None:
        groups = await self.attempt(self.control_plane.dead_letter_groups(), polling=True)
        if groups is not None:
            self.groups = {group_key(group): group for group in groups}
            rows = [(key, group_row(group)) for key, group in self.groups.items()]
            self.query_one("#groups", LiveTable).show(rows)
        dead_letters = await self.attempt(self.control_plane.dead_letters(), polling=True)
        if dead_letters is not None:
            self.dead_letters = {dead_letter_key(d): d for d in dead_letters}
            rows = [(key, dead_letter_row(d)) for key, d in self.dead_letters.items()]
            self.query_one("#dead-letters", LiveTable).show(rows)

    def _selected(self) -> ws.DeadLetter | None:
        key = self.query_one("#dead-letters", LiveTable).selected_key
        dead_letter = self.dead_letters.get(key) if key else None
        if dead_letter is None:
            self.say("no dead letter selected", severity="warning")
        return dead_letter

    async def action_retry(self) -> None:
        if dead_letter := self._selected():
            await self._retry(dead_letter, None)

    async def action_retry_edited(self) -> None:
        dead_letter = self._selected()
        if dead_letter is None:
            return
        run = await self.attempt(self.control_plane.get_run(dead_letter.run_id))
        events = await self.attempt(self.control_plane.history(dead_letter.run_id))
        if run is None or events is None:
            return

        async def send(edited: str | None) -> None:
            if edited is not None:
                await self._retry(dead_letter, edited)

        title = f"retry {dead_letter.node_id} of {dead_letter.run_id} with this input"
        modal = JsonModal(title, step_input(run, events, dead_letter.node_id))
        self.app.push_screen(modal, send)

    async def _retry(self, dead_letter: ws.DeadLetter, input_json: str | None) -> None:
        call = self.control_plane.retry_step(dead_letter.run_id, dead_letter.node_id, input_json)
        if (run := await self.attempt(call)) is not None:
            edited = " with edited input" if input_json is not None else ""
            self.say(f"retried {dead_letter.node_id} of {run.id}{edited}: {run_status(run.status)}")
            self.refresh_now()

    def action_skip(self) -> None:
        dead_letter = self._selected()
        if dead_letter is None:
            return

        async def send(output: str | None) -> None:
            if output is None:
                return
            call = self.control_plane.skip_step(dead_letter.run_id, dead_letter.node_id, output)
            if (run := await self.attempt(call)) is not None:
                self.say(f"skipped {dead_letter.node_id} of {run.id}: {run_status(run.status)}")
                self.refresh_now()

        title = f"skip {dead_letter.node_id} of {dead_letter.run_id}: the output it returns"
        self.app.push_screen(JsonModal(title, "{}"), send)

    def action_abandon(self) -> None:
        dead_letter = self._selected()
        if dead_letter is None:
            return

        async def abandon(yes: bool | None) -> None:
            if not yes:
                return
            if run := await self.attempt(self.control_plane.abandon_run(dead_letter.run_id)):
                self.say(f"abandoned {run.id}: {run_status(run.status)}")
                self.refresh_now()

        question = f"Abandon run {dead_letter.run_id}, undoing its completed steps?"
        self.app.push_screen(ConfirmModal(question), abandon)

    def action_redrive(self) -> None:
        key = self.query_one("#groups", LiveTable).selected_key
        group = self.groups.get(key) if key else None
        if group is None:
            self.say("no group selected", severity="warning")
            return

        async def redrive(yes: bool | None) -> None:
            if not yes:
                return
            if (answer := await self.attempt(self.control_plane.redrive(group))) is not None:
                self.say(f"retried {answer.retried}; {answer.remaining} still match")
                self.refresh_now()

        question = (
            f"Retry all {group.count} dead letters of {group.workflow_name} / "
            f"{group.step_type} / {group.error_type}?"
        )
        self.app.push_screen(ConfirmModal(question), redrive)
