"""The dialogs of the console: JSON to send, a comment, a yes/no before something drastic.

Each is a ModalScreen that dismisses with its result (None when cancelled), so a screen
pushes it with a callback that makes the call.
"""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

MODAL_CSS = """
JsonModal, CommentModal, ConfirmModal {
    align: center middle;
}
.dialog {
    width: 80%;
    max-width: 100;
    height: auto;
    max-height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 1 2;
}
.dialog TextArea {
    height: 14;
}
.dialog .error {
    color: $error;
}
.dialog Horizontal {
    height: auto;
    margin-top: 1;
}
"""


def parse_json(text: str) -> str:
    """`text` as compact JSON to send.

    Raises:
        ValueError: a one-line message saying where the JSON is wrong.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    return json.dumps(value, separators=(",", ":"))


class JsonModal(ModalScreen[str | None]):
    """A JSON text area, prefilled; ctrl+s sends, escape cancels. Bad JSON is refused here,
    inline, so nothing reaches the server."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "Send", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, initial: str) -> None:
        super().__init__()
        self._title = title
        self._initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title)
            yield TextArea(self._initial, language=None, id="json")
            yield Static("", id="json-error", classes="error")
            with Horizontal():
                yield Button("Send (ctrl+s)", id="send", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_submit(self) -> None:
        try:
            compact = parse_json(self.query_one(TextArea).text)
        except ValueError as exc:
            self.query_one("#json-error", Static).update(str(exc))
            return
        self.dismiss(compact)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_submit()
        else:
            self.action_cancel()


class CommentModal(ModalScreen[str | None]):
    """An optional one-line comment; enter sends (an empty comment is fine), escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._title)
            yield Input(placeholder="comment (optional), enter to send", id="comment")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """Yes or no before a drastic action; focus starts on No, so enter alone does nothing."""

    BINDINGS = [
        Binding("escape", "answer(False)", "No"),
        Binding("n", "answer(False)", "No"),
        Binding("y", "answer(True)", "Yes"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._question)
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
