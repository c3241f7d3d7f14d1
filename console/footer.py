"""The footer of every screen: Textual's, rebuilt only when the keys it shows change.

Textual's Footer rebuilds itself (a widget per key, each styled and mounted) on every signal
that a screen's bindings may have changed: closing the `/` prompt sends three (the screen
resumed, the focus came back, ...) for keys that are the same as before. On the Runs screen
that was a third of the time a filter took to paint; here a signal whose keys are those
already shown is let go.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the last rebuild showed: (key, shown as, description, action, enabled, tooltip).
        self._shown: tuple[tuple[object, ...], ...] | None = None

    def bindings_changed(self, screen: Screen[Any]) -> None:
        # The conditions under which Textual's footer rebuilds itself.
        rebuilds = screen.app.app_focus and self.is_attached and screen is self.screen
        if rebuilds:
            shown = tuple(
                (
                    binding.key,
                    self.app.get_key_display(binding),
                    binding.description,
                    binding.action,
                    enabled,
                    tooltip,
                    binding.group,
                )
                for _, binding, enabled, tooltip in screen.active_bindings.values()
                if binding.show
            )
            if shown == self._shown:
                return
            self._shown = shown
        super().bindings_changed(screen)
