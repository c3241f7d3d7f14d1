"""Where `:` jumps: each destination a name, its aliases and how to open its screen.

A screen becomes reachable with one line in app.py:

    destinations.register("dlq", lambda cp, arg: DeadLettersScreen(cp), "dead-letter groups",
                          aliases=("deadletters", "dead-letters"))

A destination that takes an argument (`:run ID`) says so with `argument="ID"`; its opener gets
the text after the name. Jumping to a view replaces the views above the first screen (so esc
leads back to it); a destination with an argument (an item) opens on top of what is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.screen import Screen

if TYPE_CHECKING:
    from console.client import ControlPlane

Opener = Callable[["ControlPlane", str], Screen[None]]


@dataclass(frozen=True)
class Destination:
    name: str
    open: Opener
    description: str
    aliases: tuple[str, ...] = ()
    # The argument's name ("ID") when it needs one; "" for a view.
    argument: str = ""
    # The first screen (runs): jumping there pops everything above it.
    home: bool = False


class Destinations:
    def __init__(self) -> None:
        self._by_name: dict[str, Destination] = {}
        self._ordered: list[Destination] = []

    def register(
        self,
        name: str,
        open: Opener,
        description: str,
        *,
        aliases: tuple[str, ...] = (),
        argument: str = "",
        home: bool = False,
    ) -> None:
        """Adds a destination; registering a name again replaces it."""
        destination = Destination(name, open, description, aliases, argument, home)
        self._ordered = [d for d in self._ordered if d.name != name] + [destination]
        self._by_name = {}
        for known in self._ordered:
            for alias in (known.name, *known.aliases):
                self._by_name[alias] = known

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._ordered)

    @property
    def home(self) -> Destination | None:
        return next((d for d in self._ordered if d.home), None)

    def resolve(self, typed: str) -> tuple[Destination, str]:
        """The destination and argument of what was typed after `:`.

        Raises:
            ValueError: an unknown name, or an argument missing or not expected.
        """
        name, _, argument = typed.strip().partition(" ")
        name = name.lower()
        found = self._by_name.get(name)
        if found is None:
            # A unique prefix is enough (`:def`, `:work`).
            matches = {d.name: d for d in self._ordered if d.name.startswith(name) and name}
            if len(matches) == 1:
                found = next(iter(matches.values()))
        if found is None:
            known = ", ".join(d.name + (f" {d.argument}" if d.argument else "") for d in self)
            raise ValueError(f"no view named {name!r}: {known}")
        argument = argument.strip()
        if found.argument and not argument:
            raise ValueError(f":{found.name} needs {found.argument}")
        if argument and not found.argument:
            raise ValueError(f":{found.name} takes nothing after it")
        return found, argument

    def suggestions(self) -> list[str]:
        return [d.name + (" " if d.argument else "") for d in self._ordered]

    def hint(self) -> str:
        return "  ".join(d.name + (f" {d.argument}" if d.argument else "") for d in self._ordered)


destinations = Destinations()
