"""Argument types shared by the commands: bad values are usage errors (exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole_number(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """An argparse `type` accepting whole numbers from `low` (to `high` when given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        if value < low:
            limit = "greater than 0" if low == 1 else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {limit}")
        return value

    return parse


# Pages of list commands: the API's own bounds.
page_size = whole_number(1, 1000)


def positive_seconds(text: str) -> float:
    """A duration in seconds greater than 0 (`--timeout 2.5`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds greater than 0")
    return value
