"""The dialog before an action on a run: what it will do, a comment recorded with it (in the
run's history, law 7), and for what cannot be taken back a "Yes" that is not the default.

The comment box has the focus: enter sends a plain action; for a drastic one (cancel,
abandon) enter moves to the buttons, where the focus starts on "No" and `y` confirms. It
dismisses with the comment ("" when none was written) or None when cancelled.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console import keys
from console.modals import hint

# The console's dialog style (.dialog, console/modals.py), and a red border when drastic.
PROMPT_CSS = """
ActionPrompt { align: center middle; }
ActionPrompt .dialog.drastic { border: round $error; }
ActionPrompt #explanation { height: auto; max-height: 12; }
"""


class ActionPrompt(ModalScreen[str | None]):
    DEFAULT_CSS = PROMPT_CSS
    # y and n are only reached when the comment box does not have the focus (it takes letters).
    BINDINGS = keys.bindings("dialog.cancel", "dialog.yes", "dialog.no")

    def __init__(
        self,
        title: str,
        explanation: str = "",
        *,
        drastic: bool = False,
        comment: bool = True,
        placeholder: str = "comment, recorded in the run's history",
    ) -> None:
        super().__init__()
        self._title = title
        self._explanation = explanation
        self.drastic = drastic
        self._with_comment = comment
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        classes = "dialog drastic" if self.drastic else "dialog"
        with Vertical(classes=classes):
            yield Label(self._title, markup=False)
            if self._explanation:
                with VerticalScroll(id="explanation"):
                    yield Static(self._explanation, markup=False)
            if self._with_comment:
                yield Input(placeholder=self._placeholder, id="comment")
            with Horizontal(classes="buttons"):
                if self.drastic:
                    yield Button(f"No {hint(self, 'dialog.cancel')}", id="no")
                    yield Button(f"Yes {hint(self, 'dialog.yes')}", id="yes", variant="error")
                else:
                    yield Button("Send enter", id="yes", variant="primary")
                    yield Button(f"Cancel {hint(self, 'dialog.cancel')}", id="no")

    def on_mount(self) -> None:
        if self._with_comment:
            self.query_one(Input).focus()
        else:
            self.query_one("#no" if self.drastic else "#yes", Button).focus()

    @property
    def comment(self) -> str:
        if not self._with_comment:
            return ""
        return self.query_one(Input).value.strip()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.drastic:
            self.query_one("#no", Button).focus()
        else:
            self.dismiss(self.comment)

    def action_confirm(self) -> None:
        self.dismiss(self.comment)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "yes":
            self.action_confirm()
        else:
            self.action_cancel()
