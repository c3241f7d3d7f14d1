"""The one-line prompts at the bottom of the screen: `:` to jump, `/` to filter.

Like k9s: the line opens over the footer, enter runs it, escape leaves it. A suggestion (the
rest of a destination's name) shows greyed and `→` takes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from console import keys


class PromptModal(ModalScreen[str | None]):
    """`:` or `/` and a line to type; dismisses with the text (None when escaped)."""

    DEFAULT_CSS = """
    PromptModal { align: left bottom; background: $background 0%; }
    PromptModal > #prompt-box { dock: bottom; height: auto; width: 100%; background: $panel; }
    PromptModal #prompt-line { height: 1; }
    PromptModal #prompt-sign { width: 2; padding: 0 0 0 1; color: $accent; }
    PromptModal Input { border: none; height: 1; padding: 0; width: 1fr; }
    PromptModal #prompt-hint { height: auto; color: $text-muted; padding: 0 1; }
    """
    BINDINGS = keys.bindings("dialog.cancel")

    def __init__(
        self, sign: str, initial: str = "", *, hint: str = "", suggestions: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self._sign = sign
        self._initial = initial
        self._hint = hint
        self._suggestions = list(suggestions)

    def compose(self) -> ComposeResult:
        suggester = (
            SuggestFromList(self._suggestions, case_sensitive=False) if self._suggestions else None
        )
        with Vertical(id="prompt-box"):
            yield Static(self._hint, id="prompt-hint", markup=False)
            with Horizontal(id="prompt-line"):
                yield Label(self._sign, id="prompt-sign")
                yield Input(self._initial, suggester=suggester, select_on_focus=False, id="prompt")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
