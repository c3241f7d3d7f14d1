"""A bulk action on runs (cancel, abandon, pause, resume, fork) as a durable operation: the
dry run first, a rate and a comment, then the operation (OperationService.StartRunAction).

Like the redrive dialog (console/screens/redrive.py): it opens on the dry run — how many runs
the selection matches, how many the action applies to and why the others are left alone, per
workflow version, how long at the rate — and plans again as the rate (or a fork's node) is
typed, so what is shown is what will be sent. A cancel or an abandon is not started by enter
alone: enter in the comment moves to "No", `y` starts. A start whose answer was lost is sent
again under the same request id (console/run_client.py) and acts once.
"""

from __future__ import annotations

from surefoot.v1 import operation_service_pb2 as opb
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console import keys
from console.client import ConsoleError
from console.modals import hint
from console.render_incident import duration
from console.run_client import RunClient

DEFAULT_RATE = 10.0
MAX_RATE = 10_000.0
ACTIONS = {
    "cancel": (opb.RUN_ACTION_TYPE_CANCEL, "Cancel", True),
    "abandon": (opb.RUN_ACTION_TYPE_ABANDON, "Abandon", True),
    "pause": (opb.RUN_ACTION_TYPE_PAUSE, "Pause", False),
    "resume": (opb.RUN_ACTION_TYPE_RESUME, "Resume", False),
    "fork": (opb.RUN_ACTION_TYPE_FORK, "Fork", False),
}
EFFECTS = {
    "cancel": "each ends CANCELLED, its open steps cancelled, nothing compensated",
    "abandon": "each compensates its completed steps, newest first, and ends COMPENSATED",
    "pause": "each starts no new step until resumed; attempts in flight finish",
    "resume": "each paused run goes on",
    "fork": "each gets a new linked run from the node (a new business action)",
}


def parse_rate(text: str) -> float:
    """The rate typed, in runs per second.

    Raises:
        ValueError: not a number, or outside 0.001 <= rate <= 10000.
    """
    try:
        rate = float(text.strip().removesuffix("/s"))
    except ValueError:
        raise ValueError(f"rate {text.strip()!r} is not a number of runs per second") from None
    if not 0.001 <= rate <= MAX_RATE:
        raise ValueError(f"rate must be at least 0.001 and at most {MAX_RATE:g} per second")
    return rate


def plan_text(plan: opb.RunActionPlan) -> str:
    """A dry run's answer, in the operator's words."""
    lines = [
        f"matched {plan.matched} · applies to {plan.applicable} · left alone {plan.not_applicable}",
        f"at {plan.rate_per_second:g}/s: about {duration(plan.expected_duration)}",
    ]
    for workflow in plan.workflows:
        lines.append(
            f"  {workflow.applicable} of {workflow.matched} × "
            f"{workflow.workflow_name}@{workflow.workflow_version}"
        )
    for reason in plan.reasons:
        lines.append(f"  left alone: {reason.count} × {reason.reason}")
    return "\n".join(lines)


class RunActionModal(ModalScreen[opb.Operation | None]):
    """Dismisses with the operation started, or None when the operator escaped."""

    DEFAULT_CSS = """
    RunActionModal { align: center middle; }
    RunActionModal .dialog { height: auto; }
    RunActionModal .dialog.drastic { border: round $error; }
    RunActionModal #selection { color: $text-muted; height: auto; }
    RunActionModal #plan { height: auto; min-height: 2; max-height: 10; margin: 1 0; }
    RunActionModal .field { height: 1; margin-bottom: 1; }
    RunActionModal .field Label { width: 10; }
    RunActionModal .field Input { width: 1fr; border: none; height: 1; background: $boost; }
    RunActionModal .field Input:focus { background: $accent 30%; }
    RunActionModal #node-field { display: none; }
    RunActionModal.-fork #node-field { display: block; }
    """
    # y and n are reached only when no field has the focus (a field takes letters).
    BINDINGS = keys.bindings("dialog.cancel", "dialog.send", "dialog.yes", "dialog.no")

    def __init__(
        self, client: RunClient, selection: opb.RunSelection, action: str, described: str
    ) -> None:
        super().__init__()
        self.client = client
        self.selection = selection
        self.action = action
        self.action_type, self.verb, self.drastic = ACTIONS[action]
        self.described = described
        self.plan: opb.RunActionPlan | None = None
        self._starting = False

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog drastic" if self.drastic else "dialog"):
            yield Static(f"{self.verb} {self.described}", classes="title", markup=False)
            yield Static(EFFECTS[self.action], id="selection", markup=False)
            yield Static("dry run…", id="plan", markup=False)
            with Horizontal(classes="field", id="node-field"):
                yield Label("from node")
                yield Input(placeholder="the node each fork runs from", id="node")
            with Horizontal(classes="field"):
                yield Label("rate /s")
                yield Input(f"{DEFAULT_RATE:g}", id="rate", select_on_focus=True)
            with Horizontal(classes="field"):
                yield Label("comment")
                yield Input(placeholder="why (kept in each run's history)", id="comment")
            yield Static("", id="action-error", classes="error", markup=False)
            with Horizontal(classes="buttons"):
                cancel = hint(self, "dialog.cancel")
                if self.drastic:
                    yield Button(f"No {cancel}", id="no")
                    yes = f"{self.verb} {hint(self, 'dialog.yes')}"
                    yield Button(yes, id="start", variant="error")
                else:
                    start = f"Start {hint(self, 'dialog.send')}"
                    yield Button(start, id="start", variant="primary")
                    yield Button(f"Cancel {cancel}", id="no")

    def on_mount(self) -> None:
        self.set_class(self.action == "fork", "-fork")
        self.query_one("#node" if self.action == "fork" else "#rate", Input).focus()
        self._plan_soon()

    def request(self) -> opb.StartRunActionRequest:
        """What is sent: the selection, the action, the rate and comment typed.

        Raises:
            ValueError: the rate is not one, or a fork without a node.
        """
        action = opb.RunAction(type=self.action_type)
        if self.action == "fork":
            action.from_node = self.query_one("#node", Input).value.strip()
            if not action.from_node:
                raise ValueError("type the node each fork runs from")
        return opb.StartRunActionRequest(
            selection=self.selection,
            action=action,
            rate_per_second=parse_rate(self.query_one("#rate", Input).value),
            comment=self.query_one("#comment", Input).value.strip(),
        )

    # -- the dry run -------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id in ("rate", "node"):
            self._plan_soon()

    def _plan_soon(self) -> None:
        self.run_worker(self._show_plan(), group="plan", exclusive=True)

    async def _show_plan(self) -> opb.RunActionPlan | None:
        error = self.query_one("#action-error", Static)
        try:
            request = self.request()
        except ValueError as exc:
            error.update(str(exc))
            return None
        try:
            plan = await self.client.plan_run_action(request)
        except ConsoleError as exc:
            error.update(f"dry run refused: {exc}")
            return None
        if not self.is_attached:
            return None
        error.update("")
        self.plan = plan
        self.query_one("#plan", Static).update(plan_text(plan))
        return plan

    # -- starting ----------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id == "node":
            self.query_one("#rate", Input).focus()
        elif event.input.id == "rate":
            self.query_one("#comment", Input).focus()
        elif self.drastic:
            self.query_one("#no", Button).focus()
        else:
            self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "start":
            self.action_submit()
        else:
            self.action_cancel()

    def action_confirm(self) -> None:
        self.action_submit()

    def action_submit(self) -> None:
        if not self._starting:
            self._starting = True
            self.run_worker(self._start(), group="start", exclusive=True)

    async def _start(self) -> None:
        error = self.query_one("#action-error", Static)
        try:
            # What is shown is the plan of exactly what is sent.
            plan = await self._show_plan()
            if plan is None:
                return
            if plan.applicable == 0:
                error.update(f"nothing to {self.action}: the action applies to none of them")
                return
            what = f"{self.action} {plan.applicable} runs"
            answer = await self.client.start_run_action(self.request(), what)
        except (ConsoleError, ValueError) as exc:
            error.update(f"{exc} (enter tries again; a start already made is not repeated)")
            return
        finally:
            self._starting = False
        self.dismiss(answer.operation)

    def action_cancel(self) -> None:
        self.dismiss(None)
