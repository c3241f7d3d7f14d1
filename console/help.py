"""`?`: every key of the screen below, with the id that remaps it in console.toml, then the
keys of the dialogs, the JSON editor and the inspector, which have no footer of their own."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from console import keys


def key_rows(screen: Screen[Any]) -> list[tuple[str, str, str, bool]]:
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


# The registry's keys that belong to no screen (each dialog's, the editor's, the
# inspector's), by where they work.
ELSEWHERE = {"dialog.": "in a dialog", "editor.": "in the JSON editor", "inspector.": "inspector"}


def elsewhere_rows(screen: Screen[Any], listed: set[str]) -> list[tuple[str, str, str]]:
    """(keys as mapped now, description and where, action id) of those not in `listed`."""
    rows = []
    for action in keys.ACTIONS.values():
        where = next((w for p, w in ELSEWHERE.items() if action.id.startswith(p)), None)
        if where is not None and action.id not in listed:
            shown = keys.key_hint(screen.app, action.id, every=True)
            rows.append((shown, f"{action.description} ({where})", action.id))
    return rows


class HelpModal(ModalScreen[None]):
    """The keys of the screen it was opened on; any of escape, q or ? closes it."""

    DEFAULT_CSS = """
    HelpModal { align: center middle; }
    HelpModal > VerticalScroll {
        width: 90%; max-width: 100; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    # The key that opened it closes it too, wherever it was remapped.
    BINDINGS = [*keys.bindings("dialog.close"), keys.rebound("app.help", "close")]

    def __init__(self, below: Screen[object]) -> None:
        super().__init__()
        self._below = below

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("KEY", no_wrap=True)
        table.add_column("DOES")
        table.add_column("REMAP AS", style="dim", no_wrap=True)
        readonly_note = False
        rows = key_rows(self._below)
        for key, description, action_id, enabled in rows:
            style = "" if enabled else "dim strike"
            if not enabled:
                readonly_note = True
            table.add_row(Text(key, style), Text(description, style), action_id)
        # The dialogs' keys and the inspector's, after a blank line, in the same columns: a
        # dialog has no footer to show them.
        table.add_row("", "", "")
        for key, description, action_id in elsewhere_rows(self._below, {r[2] for r in rows}):
            table.add_row(key, description, action_id)
        title = self._below.sub_title or self._below.__class__.__name__
        with VerticalScroll():
            closes = keys.key_hint(self.app, "dialog.close")
            yield Static(Text(f"Keys of {title}  ({closes} closes)", style="bold"))
            yield Static(table)
            lines = [f'Remap in {keys.CONFIG_HINT}: [keys] "REMAP AS" = "key"']
            if readonly_note:
                lines.append("Struck out: changes, disabled in this read-only console.")
            yield Static(Text("\n".join(lines), style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
