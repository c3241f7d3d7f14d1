"""Waiting for a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class EventuallyTimeout(AssertionError):
    """The condition did not hold before the deadline."""


def assert_eventually(
    fn: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "",
) -> T:
    """Call `fn` until it returns a truthy value without raising AssertionError.

    Generous defaults: the tests run on a loaded 2-core CI machine, where a control plane
    that answers in 50 ms on a laptop can take seconds.

    Args:
        fn: The condition; it may assert (the last failure is reported) or return a value.
        timeout: Seconds before giving up.
        interval: Seconds between two calls.
        message: Says what was awaited, for the failure report.

    Returns:
        The first truthy value `fn` returned (never None: a condition may return
        `X | None` and its caller gets an `X`).

    Raises:
        EventuallyTimeout: With the last assertion failure or the last value returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = _check(fn, deadline, timeout, message)
        if value is not None:
            return value
        time.sleep(interval)


async def assert_eventually_async(
    fn: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "",
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """`assert_eventually` for a test running on an event loop: `pause` lets the loop run
    between two checks (a Textual pilot's `pause`, so the app refreshes while it waits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = _check(fn, deadline, timeout, message)
        if value is not None:
            return value
        await pause(interval)


def _check(fn: Callable[[], T | None], deadline: float, timeout: float, message: str) -> T | None:
    """`fn`'s value if truthy; None to try again; EventuallyTimeout past the deadline."""
    last: object
    try:
        value = fn()
    except AssertionError as exc:
        last = exc
    else:
        if value:
            return value
        last = f"last value: {value!r}"
    if time.monotonic() >= deadline:
        what = message or getattr(fn, "__name__", "condition")
        raise EventuallyTimeout(f"{what}: not true after {timeout:.0f} s ({last})")
    return None
