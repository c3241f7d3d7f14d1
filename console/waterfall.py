"""A trace drawn as a waterfall: one bar per step on the run's time axis, as Rich Text.

Pure functions of a `Trace` and the bar width, so the drawing is unit-tested without a
terminal. Every span takes at least one cell, so a quick retry or an instant decision stays
visible on a long run; where spans share a cell the more telling one wins (an attempt over a
wait, a wait over a queue), and a retry's backoff keeps a cell between its two attempts.
"""

from __future__ import annotations

import math

from rich.text import Text

from console.trace import Span, SpanKind, StepTrace, Trace

# (glyph, style) of each span, by kind and `what`.
ATTEMPT_GLYPHS = {
    "running": ("▓", "bold cyan"),
    "completed": ("█", "green"),
    "failed": ("█", "red"),
    "lost": ("█", "yellow"),
    "cancelled": ("█", "bright_black"),
}
WAIT_GLYPHS = {
    "approval": ("░", "magenta"),
    "timer": ("░", "blue"),
    "event": ("░", "cyan"),
    "dead_letter": ("░", "red"),
    "branches": ("─", "bright_black"),
    "paused": ("░", "yellow"),
}
QUEUED = ("·", "bright_black")
BACKOFF = ("╌", "yellow")
MARK = ("◆", "magenta")
# Drawn over each other in this order: later kinds win a shared cell (see `bar`).
PAINT_ORDER = (SpanKind.QUEUED, SpanKind.WAIT, SpanKind.ATTEMPT, SpanKind.BACKOFF, SpanKind.MARK)
LEGEND = (
    ("█", "green", "ok"),
    ("█", "red", "failed"),
    ("▓", "bold cyan", "running"),
    ("╌", "yellow", "backoff"),
    ("·", "bright_black", "queued"),
    ("░", "magenta", "approval"),
    ("░", "blue", "timer"),
    ("░", "cyan", "event"),
    ("░", "red", "dead letter"),
)


def axis_end(trace: Trace, now: float) -> float:
    """The right end of the axis: the run's end, else `now` (never before its last event)."""
    if trace.end is not None:
        return trace.end
    return max(now, trace.last_time or now)


def glyph(span: Span) -> tuple[str, str]:
    if span.kind is SpanKind.ATTEMPT and span.what == "run":
        return ("━", "cyan" if span.end is None else "bright_black")
    if span.kind is SpanKind.ATTEMPT:
        return ATTEMPT_GLYPHS.get(span.what, ATTEMPT_GLYPHS["completed"])
    if span.kind is SpanKind.WAIT:
        return WAIT_GLYPHS.get(span.what, ("░", "white"))
    if span.kind is SpanKind.BACKOFF:
        return BACKOFF
    if span.kind is SpanKind.MARK:
        return MARK
    return QUEUED


def bar(step: StepTrace, start: float, end: float, width: int, attempt: int | None = None) -> Text:
    """`step`'s spans on the axis [start, end], `width` cells; only one attempt's (and the
    queue and backoff before it) when `attempt` is given."""
    cells: list[tuple[str, str]] = [(" ", "")] * width
    if width <= 0:
        return Text()
    scale = width / max(end - start, 1e-6)
    spans = [s for s in step.spans if attempt is None or s.attempt == attempt]
    for kind in PAINT_ORDER:
        for span in spans:
            if span.kind is kind and span.start <= end:  # (a queue due later: not yet)
                first, last = _columns(span, start, end, scale, width)
                for column in range(first, last + 1):
                    cells[column] = glyph(span)
    # A backoff shares its edge cells with the attempts around it and takes them, so a short
    # retry delay stays visible between two attempts (the next one drawn from the cell
    # after); an attempt of one cell takes it back: every attempt keeps at least one cell.
    backoff = {
        column
        for span in spans
        if span.kind is SpanKind.BACKOFF and span.start <= end
        for column in range(*_inclusive(_columns(span, start, end, scale, width)))
    }
    for span in spans:
        if span.kind is SpanKind.ATTEMPT and span.start <= end:
            first, last = _columns(span, start, end, scale, width)
            if first not in backoff or last == first:
                cells[first] = glyph(span)
    text = Text()
    for char, style in cells:
        text.append(char, style)
    return text


def _column(time: float, start: float, scale: float, width: int) -> int:
    return min(width - 1, max(0, int((time - start) * scale)))


def _inclusive(columns: tuple[int, int]) -> tuple[int, int]:
    return columns[0], columns[1] + 1


def _columns(span: Span, start: float, end: float, scale: float, width: int) -> tuple[int, int]:
    """The first and last cells of `span` (at least one)."""
    span_end = end if span.end is None else span.end
    first = _column(span.start, start, scale, width)
    return first, max(first, min(width, math.ceil((span_end - start) * scale)) - 1)


def axis_label(
    trace: Trace, now: float, width: int, axis: tuple[float, float] | None = None
) -> str:
    """The timeline column's heading: 0 at the left, the run's duration at the right (and
    "now" while it runs); with a fixed `axis`, where `now` falls on it."""
    if trace.start is None:
        return "timeline".ljust(width)[:width]
    if axis is not None:
        right = f"{duration(now - axis[0])} of {duration(axis[1] - axis[0])}"
    else:
        total = duration(axis_end(trace, now) - trace.start)
        right = total if trace.ended else f"{total} now"
    left = "0s"
    gap = width - len(left) - len(right)
    if gap < 1:
        return right[:width].rjust(width)
    return left + " " * gap + right


def duration(value: float) -> str:
    """A duration in at most 6 characters: 340ms, 2.41s, 3m05s, 2h03m, 3d04h."""
    value = max(0.0, value)
    if value < 1:
        return f"{round(value * 1000)}ms"
    if value < 60:
        return f"{value:.2f}s" if value < 10 else f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def step_duration(step: StepTrace, now: float) -> str:
    start, end = step.start, step.end(now)
    if start is None or end is None:
        return "-"
    return duration(end - start)


def legend() -> Text:
    """One line saying what each glyph means."""
    text = Text()
    for char, style, meaning in LEGEND:
        text.append(char, style)
        text.append(f" {meaning}  ", "bright_black")
    return text
