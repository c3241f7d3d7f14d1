"""One dead letter in full: the error and its details, the step's input, every attempt.

`o` opens its run; r, e, s, c act on it while it is still a dead letter. Once someone else
retried or resolved it, the screen says so and refuses to act.
"""

from __future__ import annotations

from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from console import keys
from console.client import ControlPlane
from console.footer import KeyFooter
from console.render import step_status
from console.render_incident import dead_letter_details
from console.screens.polling import ConnectionLine
from console.screens.triage import TRIAGE_KEYS, TriageScreen


class DeadLetterScreen(TriageScreen):
    BINDINGS = keys.bindings(*TRIAGE_KEYS)
    DEFAULT_CSS = """
    DeadLetterScreen #state { height: 1; padding: 0 1; background: $boost; }
    DeadLetterScreen #state.settled { background: $warning; color: $text; }
    DeadLetterScreen VerticalScroll { height: 1fr; padding: 0 1; }
    """

    def __init__(self, control_plane: ControlPlane, dead_letter: ws.DeadLetter) -> None:
        super().__init__(control_plane)
        self.dead_letter = dead_letter
        self.step: run_pb2.Step | None = None
        # None until the run was read: whether the step is still dead-lettered.
        self.still_dead: bool | None = None

    def compose(self) -> ComposeResult:
        yield ConnectionLine(id="connection")
        yield Static("", id="state", markup=False)
        with VerticalScroll():
            yield Static(dead_letter_details(self.dead_letter, None), id="item", markup=False)
        yield KeyFooter(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"dead letter {self.dead_letter.run_id}:{self.dead_letter.node_id}"
        self.query_one(VerticalScroll).focus()
        super().on_mount()

    async def poll(self) -> None:
        run = await self.attempt(self.control_plane.get_run(self.dead_letter.run_id), polling=True)
        if run is None:
            return
        self.step = next((s for s in run.steps if s.node_id == self.dead_letter.node_id), None)
        status = self.step.status if self.step is not None else None
        self.still_dead = status == run_pb2.STEP_STATUS_DEAD_LETTERED
        state = self.query_one("#state", Static)
        if self.still_dead:
            state.update("dead letter · r retry · e edit input · s skip · c abandon · o run")
        else:
            shown = step_status(status) if status is not None else "gone"
            state.update(f"no longer a dead letter: the step is {shown} (o opens the run)")
        state.set_class(not self.still_dead, "settled")
        self.query_one("#item", Static).update(dead_letter_details(self.dead_letter, self.step))

    def target(self) -> ws.DeadLetter | None:
        return self.dead_letter

    def _acting(self) -> bool:
        if self.still_dead is False:
            self.say(
                f"{self.dead_letter.run_id}:{self.dead_letter.node_id} is no longer a dead "
                "letter: nothing done",
                severity="warning",
            )
            return False
        return True

    def action_retry(self) -> None:
        if self._acting():
            super().action_retry()

    async def action_retry_edited(self) -> None:
        if self._acting():
            await super().action_retry_edited()

    def action_skip(self) -> None:
        if self._acting():
            super().action_skip()

    def action_abandon(self) -> None:
        if self._acting():
            super().action_abandon()
