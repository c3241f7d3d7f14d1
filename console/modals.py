"""The dialogs of the console: JSON to send, a comment, a yes/no before something drastic.

Each is a ModalScreen that dismisses with its result (None when cancelled), so a screen
pushes it with a callback that makes the call. Every one fits an 80×24 terminal with its
buttons and hints visible: the text area takes what height is left, never more. Their keys
are the registry's `dialog.*` and `editor.*` (console/keys.py), and the hints on the buttons
name the key as remapped.
"""

from __future__ import annotations

import json
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static, TextArea

from console import keys

MODAL_CSS = """
JsonModal, CommentModal, ConfirmModal, RedriveModal, TextModal {
    align: center middle;
}
.dialog {
    width: 90%;
    max-width: 110;
    height: auto;
    max-height: 100%;
    border: round $accent;
    background: $surface;
    padding: 0 1;
}
JsonModal .dialog, TextModal .dialog {
    height: 90%;
}
.dialog JsonEditor, .dialog #text {
    height: 1fr;
    min-height: 3;
}
.dialog .error {
    color: $error;
    height: auto;
}
.dialog .buttons {
    height: auto;
    align-horizontal: right;
}
.dialog Button {
    min-width: 10;
    height: 1;
    border: none;
    margin-left: 1;
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


class JsonEditor(TextArea):
    """A TextArea where ctrl+a selects everything (TextArea's own ctrl+a goes to line start),
    as in every editor an operator pastes a corrected payload into."""

    BINDINGS = keys.bindings("editor.select_all")


class JsonModal(ModalScreen[str | None]):
    """A JSON text area, prefilled; ctrl+s sends, escape cancels. Bad JSON is refused here,
    inline, so nothing reaches the server."""

    BINDINGS = keys.bindings("dialog.send", "dialog.cancel")

    def __init__(self, title: str, initial: str) -> None:
        super().__init__()
        self._title = title
        self._initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, markup=False)
            yield JsonEditor(self._initial, language=None, id="json")
            yield Static("", id="json-error", classes="error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"Send {hint(self, 'dialog.send')}", id="send", variant="primary")
                yield Button(f"Cancel {hint(self, 'dialog.cancel')}", id="cancel")

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

    BINDINGS = keys.bindings("dialog.cancel")

    def __init__(self, title: str) -> None:
        super().__init__()
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._title, markup=False)
            yield Input(placeholder="comment (optional), enter to send", id="comment")
            yield Static(f"enter sends · {hint(self, 'dialog.cancel')} cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmModal(ModalScreen[bool]):
    """Yes or no before a drastic action; focus starts on No, so enter alone does nothing.
    The question wraps: every word of it (the error type, the run) stays readable."""

    BINDINGS = keys.bindings("dialog.cancel", "dialog.no", "dialog.yes")

    def __init__(self, question: str) -> None:
        super().__init__()
        self._question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(self._question, markup=False)
            with Horizontal(classes="buttons"):
                yield Button(f"No {hint(self, 'dialog.no')}", id="no")
                yield Button(f"Yes {hint(self, 'dialog.yes')}", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextModal(ModalScreen[None]):
    """Read-only text (a definition, a diff) to scroll through; escape closes."""

    BINDINGS = keys.bindings("dialog.close")

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self._title = title
        self._text = text

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(f"{self._title}  ({hint(self, 'dialog.close')} closes)", markup=False)
            yield TextArea(self._text, read_only=True, id="text", soft_wrap=False)

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_close(self) -> None:
        self.dismiss(None)


def hint(screen: ModalScreen[Any], action_id: str) -> str:
    """The key of `action_id` as the console maps it, for a button's label."""
    return keys.key_hint(screen.app, action_id)
