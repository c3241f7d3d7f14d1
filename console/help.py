"""`?`: every key of the screen below, with the id that remaps it in console.toml."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from console import keys


def key_rows(screen: Screen[object]) -> list[tuple[str, str, str, bool]]:
    """(key, description, action id, enabled) of each binding active on `screen`."""
    rows: list[tuple[str, str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description or binding.system:
            continue
        shown = screen.app.get_key_display(binding)
        if (shown, binding.description) in seen:
            continue
        seen.add((shown, binding.description))
        rows.append((shown, binding.description, binding.id or "", active.enabled))
    # The console's own keys first (they have ids), then what every table or field does.
    return sorted(rows, key=lambda row: not row[2])


class HelpModal(ModalScreen[None]):
    """The keys of the screen it was opened on; any of escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpModal { align: center middle; }
    HelpModal > VerticalScroll {
        width: 90%; max-width: 100; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
    ]

    def __init__(self, below: Screen[object]) -> None:
        super().__init__()
        self._below = below

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("KEY", no_wrap=True)
        table.add_column("DOES")
        table.add_column("REMAP AS", style="dim", no_wrap=True)
        readonly_note = False
        for key, description, action_id, enabled in key_rows(self._below):
            style = "" if enabled else "dim strike"
            if not enabled:
                readonly_note = True
            table.add_row(Text(key, style), Text(description, style), action_id)
        title = self._below.sub_title or self._below.__class__.__name__
        with VerticalScroll():
            yield Static(Text(f"Keys of {title}  (esc closes)", style="bold"))
            yield Static(table)
            lines = [f'Remap in {keys.CONFIG_HINT}: [keys] "REMAP AS" = "key"']
            if readonly_note:
                lines.append("Struck out: changes, disabled in this read-only console.")
            yield Static(Text("\n".join(lines), style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
