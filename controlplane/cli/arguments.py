"""Argument types shared by the commands: bad values are usage errors (exit 2)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp


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


_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def point_in_time(text: str, now: datetime | None = None) -> Timestamp:
    """An age before `now` ("2h"; default: now) or a time (RFC 3339; without an offset, UTC),
    as `--since`/`--until` take it.

    Raises:
        ValueError: `text` is neither (the caller says so in its own words).
    """
    stamp = Timestamp()
    age = _AGE.fullmatch(text.strip())
    if age:
        ago = timedelta(seconds=float(age[1]) * _UNITS[age[2]])
        stamp.FromDatetime((now or datetime.now(UTC)) - ago)
        return stamp
    when = datetime.fromisoformat(text.strip())
    stamp.FromDatetime(when if when.tzinfo else when.replace(tzinfo=UTC))
    return stamp
