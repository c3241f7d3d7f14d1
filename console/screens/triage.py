"""What an operator does to one dead letter, from the group's list or from the item itself.

Retry (with a comment), retry with edited input, skip with an output, abandon the run, open
the run. Each acts on the dead letter the screen's `target()` names, by its run and node: a
dead letter that vanished from under the cursor is refused with a message, never swapped for
the row that took its place.
"""

from __future__ import annotations

from surefoot.v1 import workflow_service_pb2 as ws

from console.modals import CommentModal, ConfirmModal, JsonModal
from console.render import run_status, shorten, step_input
from console.screens.polling import PollingScreen

# The keys of a screen showing dead letters (console/keys.py declares them).
TRIAGE_KEYS = (
    "dead_letter.retry",
    "dead_letter.retry_edited",
    "dead_letter.skip",
    "dead_letter.abandon",
    "dead_letter.open_run",
)


class TriageScreen(PollingScreen):
    """A screen showing dead letters; subclasses say which one the operator aims at."""

    def target(self) -> ws.DeadLetter | None:
        """The dead letter to act on, or None after saying why there is none."""
        raise NotImplementedError

    def after_change(self) -> None:
        """Called once a change was made: show the latest."""
        self.refresh_now()

    def _describe(self, dead_letter: ws.DeadLetter) -> str:
        error = shorten(f"{dead_letter.error_type}: {dead_letter.error_message}", 160)
        return f"{dead_letter.node_id} of run {dead_letter.run_id} ({error})"

    def action_retry(self) -> None:
        dead_letter = self.target()
        if dead_letter is None:
            return

        async def retry(comment: str | None) -> None:
            if comment is not None:
                await self.retry(dead_letter, None, comment)

        modal = CommentModal(f"Retry {self._describe(dead_letter)}: comment")
        self.app.push_screen(modal, retry)

    async def retry(self, dead_letter: ws.DeadLetter, input_json: str | None, comment: str) -> None:
        call = self.control_plane.retry_step(
            dead_letter.run_id, dead_letter.node_id, input_json, comment
        )
        if (run := await self.attempt(call)) is not None:
            edited = " with edited input" if input_json is not None else ""
            self.say(f"retried {dead_letter.node_id} of {run.id}{edited}: {run_status(run.status)}")
            self.after_change()

    async def action_retry_edited(self) -> None:
        dead_letter = self.target()
        if dead_letter is None:
            return
        run = await self.attempt(self.control_plane.get_run(dead_letter.run_id))
        events = await self.attempt(self.control_plane.history(dead_letter.run_id))
        if run is None or events is None:
            return

        async def send(edited: str | None) -> None:
            if edited is not None:
                await self.retry(dead_letter, edited, "retried with edited input")

        title = f"Retry {dead_letter.node_id} of {dead_letter.run_id} with this input"
        modal = JsonModal(title, step_input(run, events, dead_letter.node_id))
        self.app.push_screen(modal, send)

    def action_skip(self) -> None:
        dead_letter = self.target()
        if dead_letter is None:
            return

        async def send(output: str | None) -> None:
            if output is None:
                return
            call = self.control_plane.skip_step(
                dead_letter.run_id, dead_letter.node_id, output, "skipped from the console"
            )
            if (run := await self.attempt(call)) is not None:
                self.say(f"skipped {dead_letter.node_id} of {run.id}: {run_status(run.status)}")
                self.after_change()

        title = f"Skip {dead_letter.node_id} of {dead_letter.run_id}: the output it returns"
        self.app.push_screen(JsonModal(title, "{}"), send)

    def action_abandon(self) -> None:
        dead_letter = self.target()
        if dead_letter is None:
            return

        async def abandon(yes: bool | None) -> None:
            if not yes:
                return
            if run := await self.attempt(self.control_plane.abandon_run(dead_letter.run_id)):
                self.say(f"abandoned {run.id}: {run_status(run.status)}")
                self.after_change()

        question = (
            f"Abandon run {dead_letter.run_id}, undoing its completed steps? "
            f"It stopped at {self._describe(dead_letter)}."
        )
        self.app.push_screen(ConfirmModal(question), abandon)

    def action_open_run(self) -> None:
        dead_letter = self.target()
        if dead_letter is not None:
            # Imported here: the run screen is another lane's, and may import these screens.
            from console.screens.run import RunScreen

            self.app.push_screen(RunScreen(self.control_plane, dead_letter.run_id))
