"""Redrive a dead-letter group: the dry run first, a rate and a comment, then the operation.

The dialog opens on the dry run (StartRedrive with dry_run: how many, which are unsafe, how
long at the rate) and plans again as the rate is typed, so the duration shown is the one of
the rate that will be sent. Enter starts it (after one last dry run at exactly that rate);
a refusal stays in the dialog. A start whose answer was lost (timeout) is sent again with the
same request id when the operator presses enter again: the server returns the operation it
started instead of starting a second one.
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import workflow_service_pb2 as ws
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from console import keys
from console.client import ConsoleError, ControlPlane
from console.modals import hint
from console.render_incident import group_summary, plan_text

DEFAULT_RATE = 10.0
MAX_RATE = 10_000.0


def parse_rate(text: str) -> float:
    """The rate typed, in retries per second.

    Raises:
        ValueError: not a number, or outside 0 < rate <= 10000.
    """
    try:
        rate = float(text.strip().removesuffix("/s"))
    except ValueError:
        raise ValueError(f"rate {text.strip()!r} is not a number of retries per second") from None
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be above 0 and at most {MAX_RATE:g} per second")
    return rate


class RedriveModal(ModalScreen[opb.Operation | None]):
    """Dismisses with the operation started, or None when the operator escaped."""

    DEFAULT_CSS = """
    RedriveModal .dialog { height: auto; }
    RedriveModal #group { color: $text-muted; height: auto; }
    RedriveModal #plan { height: auto; min-height: 2; margin: 1 0; }
    RedriveModal .field { height: 1; margin-bottom: 1; }
    RedriveModal .field Label { width: 10; }
    RedriveModal .field Input { width: 1fr; border: none; height: 1; background: $boost; }
    RedriveModal .field Input:focus { background: $accent 30%; }
    RedriveModal #unsafe { display: none; height: auto; border: none; padding: 0; }
    RedriveModal #unsafe.shown { display: block; }
    """
    BINDINGS = keys.bindings("dialog.cancel", "dialog.send")

    def __init__(self, control_plane: ControlPlane, group: ws.DeadLetterGroup) -> None:
        super().__init__()
        self.control_plane = control_plane
        self.group = group
        self.selection = opb.RedriveSelection(filter=group.filter)
        self.plan: opb.RedrivePlan | None = None
        self._starting = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static("Redrive this group", classes="title")
            yield Static(group_summary(self.group), id="group", markup=False)
            yield Static("dry run…", id="plan", markup=False)
            with Horizontal(classes="field"):
                yield Label("rate /s")
                yield Input(f"{DEFAULT_RATE:g}", id="rate", select_on_focus=True)
            with Horizontal(classes="field"):
                yield Label("comment")
                yield Input(placeholder="why (kept in each run's history)", id="comment")
            yield Checkbox("also redrive unsafe steps (idempotency none)", id="unsafe")
            yield Static("", id="redrive-error", classes="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Start enter", id="start", variant="primary")
                yield Button(f"Cancel {hint(self, 'dialog.cancel')}", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#rate", Input).focus()
        self._plan_soon()

    # -- the dry run -------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "rate":
            self._plan_soon()

    def _plan_soon(self) -> None:
        self.run_worker(self._show_plan(), group="plan", exclusive=True)

    async def _show_plan(self) -> opb.RedrivePlan | None:
        error = self.query_one("#redrive-error", Static)
        try:
            rate = parse_rate(self.query_one("#rate", Input).value)
        except ValueError as exc:
            error.update(str(exc))
            return None
        try:
            answer = await self.control_plane.plan_redrive(self.selection, rate)
        except ConsoleError as exc:
            error.update(f"dry run failed: {exc}")
            return None
        if not self.is_attached:
            return None
        error.update("")
        self.plan = answer.plan
        self.query_one("#plan", Static).update(plan_text(answer.plan))
        self.query_one("#unsafe", Checkbox).set_class(answer.plan.unsafe > 0, "shown")
        return answer.plan

    # -- starting ----------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "rate":
            self.query_one("#comment", Input).focus()
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_cancel()

    def action_submit(self) -> None:
        if not self._starting:
            self._starting = True
            self.run_worker(self._start(), group="start", exclusive=True)

    async def _start(self) -> None:
        try:
            # What is shown is the plan of exactly the rate sent.
            plan = await self._show_plan()
            if plan is None:
                return
            if plan.to_redrive == 0:
                self.query_one("#redrive-error", Static).update("nothing to redrive")
                return
            comment = self.query_one("#comment", Input).value.strip()
            self.selection.ClearField("limit")
            answer = await self.control_plane.start_redrive(
                self.selection,
                plan.rate_per_second,
                comment,
                include_unsafe=self.query_one("#unsafe", Checkbox).value,
            )
        except ConsoleError as exc:
            self.query_one("#redrive-error", Static).update(
                f"{exc} (enter tries again; a start already made is not repeated)"
            )
            return
        finally:
            self._starting = False
        self.dismiss(answer.operation)

    def action_cancel(self) -> None:
        self.dismiss(None)
