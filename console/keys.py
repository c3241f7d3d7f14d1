"""Every key of the console, declared once: an id, its default key, the action it runs.

A screen takes its bindings from here (`bindings("dead_letters.retry", ...)`), so the footer,
the `?` help and the remapping of ~/.config/surefoot/console.toml all read the same table:

    [keys]
    "dead_letters.retry" = "t"      # one key, or several: "t,ctrl+r"

An action that changes something on the server is declared `writes=True`: a `--readonly`
console disables it (greyed in the footer, refused if reached another way).

To add a key: `declare(...)` it below, then list its id in the screen's BINDINGS.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class KeyAction:
    """One named action with its default key.

    Attributes:
        id: The name a config file remaps it by ("dead_letters.retry").
        key: Default key(s), Textual names, comma-separated ("r", "question_mark").
        action: The Textual action it runs on its screen ("retry", "app.jump").
        description: What the footer and the help say.
        writes: It changes something on the server (refused by a read-only console).
        show: Listed in the footer (every key is listed in the `?` help).
        priority: Taken before the focused widget sees it (enter on a table opens the row
            instead of the table's own selection).
    """

    id: str
    key: str
    action: str
    description: str
    writes: bool = False
    show: bool = True
    priority: bool = False

    def binding(self) -> Binding:
        return Binding(
            self.key,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            id=self.id,
            key_display=_DISPLAY.get(self.key),
        )


# Keys whose Textual name is not what an operator types.
_DISPLAY = {"question_mark": "?", "colon": ":", "slash": "/", "escape": "esc"}

ACTIONS: dict[str, KeyAction] = {}


def declare(
    id: str,
    key: str,
    action: str,
    description: str,
    *,
    writes: bool = False,
    show: bool = True,
    priority: bool = False,
) -> KeyAction:
    if id in ACTIONS:
        raise ValueError(f"key action {id!r} declared twice")
    declared = KeyAction(id, key, action, description, writes, show, priority)
    ACTIONS[id] = declared
    return declared


def bindings(*ids: str) -> list[BindingType]:
    """The bindings of these actions, for a screen's BINDINGS."""
    return [ACTIONS[i].binding() for i in ids]


def rebound(id: str, action: str) -> Binding:
    """The binding of action `id` running another action: the key that opens a view closing
    it again (`?` closes the help), remapped along with it."""
    declared = ACTIONS[id]
    return KeyAction(id, declared.key, action, declared.description, show=False).binding()


def key_hint(app: App[Any], id: str, *, every: bool = False) -> str:
    """The key that runs action `id` now, remapped or not, as an operator types it ("ctrl+s",
    "esc"): what a dialog writes on its buttons must be the key that works. `every`: all of
    its keys ("esc, q"), not only the first."""
    # Textual keeps the keymap set_keymap() was given here, ids to comma-separated keys.
    keymap: Mapping[str, str] = getattr(app, "_keymap", {})
    names = [name.strip() for name in (keymap.get(id) or ACTIONS[id].key).split(",")]
    return ", ".join(_DISPLAY.get(name, name) for name in (names if every else names[:1]))


def writes(action: str) -> bool:
    """Whether a screen action (its name, without parameters) changes something."""
    name = action.partition("(")[0]
    return any(a.writes and a.action.partition("(")[0] == name for a in ACTIONS.values())


# -- everywhere -----------------------------------------------------------------------------
declare("app.help", "question_mark", "app.help", "Keys")
declare("app.jump", "colon", "app.jump", "Jump")
declare("app.quit", "q", "app.quit", "Quit", show=False)
declare("app.dead_letters", "d", "app.go('dlq')", "Dead letters", show=False)
declare("app.approvals", "p", "app.go('approvals')", "Approvals", show=False)
declare("screen.back", "escape", "back", "Back")
declare("screen.filter", "slash", "filter_prompt", "Filter")

# -- dead letters ---------------------------------------------------------------------------
declare("dead_letters.open", "enter", "open", "Open", show=False, priority=True)
declare("dead_letters.redrive", "R", "redrive", "Redrive", writes=True)
declare("dead_letters.operations", "o", "operations", "Operations", show=False)
declare("dead_letter.retry", "r", "retry", "Retry", writes=True)
declare("dead_letter.retry_edited", "e", "retry_edited", "Edit+retry", writes=True)
declare("dead_letter.skip", "s", "skip", "Skip", writes=True)
declare("dead_letter.abandon", "c", "abandon", "Abandon", writes=True, show=False)
declare("dead_letter.open", "enter", "open", "Open", show=False, priority=True)
declare("dead_letter.open_run", "o", "open_run", "Run")

# -- operations -----------------------------------------------------------------------------
declare("operations.open", "enter", "open", "Open", show=False, priority=True)
declare("operation.cancel", "c", "cancel_operation", "Cancel it", writes=True)

# -- approvals ------------------------------------------------------------------------------
declare("approvals.approve", "y", "decide(True)", "Approve", writes=True)
declare("approvals.reject", "x", "decide(False)", "Reject", writes=True)
declare("approvals.open_run", "o", "open_run", "Open run", show=False)
declare(
    "approvals.approve_output", "a", "approve_output", "Approve+output", writes=True, show=False
)

# -- workers and definitions ----------------------------------------------------------------
declare("definitions.mark", "space", "mark", "Mark for diff")
declare("definitions.diff", "f", "diff", "Diff")
declare("definitions.show", "enter", "show", "Show", show=False, priority=True)
declare("definitions.deprecate", "x", "deprecate", "Deprecate", writes=True)
declare("definitions.reinstate", "u", "reinstate", "Reinstate", writes=True, show=False)
declare("definitions.evaluations", "v", "evaluations", "Evaluations", show=False)

# -- dialogs, the editor and the inspector ---------------------------------------------------
# One id per key whichever dialog shows it (console/modals.py, action_prompt.py, the redrive
# and bulk-action dialogs, the help and the prompts): remapping "dialog.send" moves ctrl+s in
# every dialog, and the hints on their buttons follow (key_hint). `?` lists them under the
# screen's own keys (console/help.py): a dialog has no footer to show them.
declare("dialog.send", "ctrl+s", "submit", "Send", priority=True)
declare("dialog.cancel", "escape", "cancel", "Cancel")
declare("dialog.yes", "y", "confirm", "Yes", show=False)
declare("dialog.no", "n", "cancel", "No", show=False)
declare("dialog.close", "escape,q", "close", "Close")
declare("editor.select_all", "ctrl+a", "select_all", "Select all", show=False)
declare("inspector.copy", "c", "copy", "Copy JSON")
declare("inspector.expand_all", "E", "expand_all", "Expand all")


class KeymapError(Exception):
    """A console.toml that cannot be used, as one line naming the file and the problem."""


CONFIG_HINT = "~/.config/surefoot/console.toml"


def default_config_path() -> Path:
    """~/.config/surefoot/console.toml, or under $XDG_CONFIG_HOME."""
    import os

    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "surefoot" / "console.toml"


def read_keymap(path: Path, *, required: bool = False) -> dict[str, str]:
    """The `[keys]` table of a console config: action id -> key(s).

    A missing file is an empty keymap unless `required` (the operator named it).

    Raises:
        KeymapError: unreadable TOML, an unknown action id, or a key that is not a string.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        if required:
            raise KeymapError(f"{path}: no such file") from None
        return {}
    except OSError as exc:
        raise KeymapError(f"{path}: {exc.strerror}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KeymapError(f"{path}: not TOML: {exc}") from None
    return checked_keymap(document.get("keys", {}), str(path))


def checked_keymap(table: object, where: str) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise KeymapError(f'{where}: [keys] must be a table of action = "key"')
    keymap: dict[str, str] = {}
    for action_id, key in table.items():
        if action_id not in ACTIONS:
            raise KeymapError(
                f"{where}: unknown action {action_id!r} in [keys] (`?` in the console lists "
                'each screen\'s actions; ids look like "dead_letter.retry")'
            )
        if not isinstance(key, str) or not key.strip():
            raise KeymapError(f'{where}: [keys] {action_id} must be a key name such as "t"')
        keymap[action_id] = key.strip()
    return keymap
