"""The waterfall as a table: a row per step (and, expanded, per attempt), the bar column as
wide as the terminal leaves it, the cursor kept on its step while the trace grows."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import events
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from console.trace import RUN_ROW, StepTrace, Trace
from console.waterfall import axis_end, axis_label, bar, duration, step_duration

STATUS_WIDTH = 13
ATTEMPTS_WIDTH = 3
TIME_WIDTH = 6
NODE_MIN, NODE_MAX = 8, 28
# DataTable pads each cell by one on each side; the vertical scrollbar takes two cells.
PADDING = 2
SCROLLBAR = 2
TIMELINE_MIN = 10
ATTEMPT_SEPARATOR = "#"
STATUS_STYLES = {
    "COMPLETED": "green",
    "APPROVED": "green",
    "SKIPPED": "green",
    "REUSED": "green",
    "RUNNING": "cyan",
    "FAILED": "red",
    "DEAD_LETTERED": "bold red",
    "LOST": "yellow",
    "RETRY_WAIT": "yellow",
    "REJECTED": "magenta",
    "WAITING": "magenta",
    "PAUSED": "yellow",
    "COMPENSATING": "yellow",
    "COMPENSATED": "blue",
    "CANCELLED": "bright_black",
    "TIMED_OUT": "yellow",
}


@dataclass(frozen=True)
class TraceRow:
    key: str
    node_id: str
    attempt: int | None
    cells: tuple[Text, ...]


def row_key(node_id: str, attempt: int | None = None) -> str:
    return node_id if attempt is None else f"{node_id}{ATTEMPT_SEPARATOR}{attempt}"


def timeline_width(total_width: int, node_width: int) -> int:
    fixed = node_width + STATUS_WIDTH + ATTEMPTS_WIDTH + TIME_WIDTH + 5 * PADDING + SCROLLBAR
    return max(TIMELINE_MIN, total_width - fixed)


def node_width(trace: Trace) -> int:
    longest = max((len(step.node_id) for step in trace.steps), default=0)
    return min(NODE_MAX, max(NODE_MIN, longest + 3, len(RUN_ROW)))


def trace_rows(
    trace: Trace,
    now: float,
    width: int,
    expanded: set[str],
    statuses: dict[str, str] | None = None,
    axis: tuple[float, float] | None = None,
) -> list[TraceRow]:
    """The rows of `trace` drawn `width` cells wide for the bars.

    `statuses` (node id -> status) overrides what the trace derived, e.g. with the step
    states of a replayed snapshot; `expanded` steps get a row per attempt under them;
    `axis` (start, end) replaces the trace's own, e.g. the whole run's during a replay.
    """
    start, end = axis or (trace.start or now, axis_end(trace, now))
    run_status = (statuses or {}).get(RUN_ROW, trace.run.status)
    rows = [_row(trace.run, run_status, start, end, now, width)]
    for step in trace.steps:
        status = (statuses or {}).get(step.node_id, step.status)
        rows.append(_row(step, status, start, end, now, width))
        if step.node_id in expanded:
            rows += _attempt_rows(step, start, end, now, width)
    return rows


def _row(
    step: StepTrace, status: str, start: float, end: float, now: float, width: int
) -> TraceRow:
    # More than one attempt: retries happened, worth a glance.
    attempts = Text(str(step.attempts or "-"), "yellow" if step.attempts > 1 else "")
    cells = (
        Text(step.node_id, "bold" if step.node_id == RUN_ROW else ""),
        Text(status, STATUS_STYLES.get(status, "")),
        attempts,
        bar(step, start, end, width),
        Text(step_duration(step, now), "bright_black"),
    )
    return TraceRow(row_key(step.node_id), step.node_id, None, cells)


def _attempt_rows(
    step: StepTrace, start: float, end: float, now: float, width: int
) -> list[TraceRow]:
    rows = []
    for span in step.attempt_spans():
        span_end = now if span.end is None else span.end
        outcome = span.what.upper()
        cells = (
            Text(f"  #{span.attempt}", "bright_black"),
            Text(outcome, STATUS_STYLES.get(outcome, "")),
            Text(""),
            bar(step, start, end, width, attempt=span.attempt),
            Text(duration(span_end - span.start), "bright_black"),
        )
        key = row_key(step.node_id, span.attempt)
        rows.append(TraceRow(key, step.node_id, span.attempt, cells))
    return rows


class TraceTable(DataTable[Text]):
    """The waterfall of a trace; `show` redraws it, `selected` says what the cursor is on."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.expanded: set[str] = set()
        self._trace: Trace | None = None
        self._now = 0.0
        self._statuses: dict[str, str] | None = None
        self._axis: tuple[float, float] | None = None
        self._rows: list[TraceRow] = []
        self._layout: tuple[int, int, str] = (0, 0, "")

    @property
    def keys(self) -> list[str]:
        return [row.key for row in self._rows]

    @property
    def shown_rows(self) -> list[TraceRow]:
        """The rows shown, top to bottom, with their cells as drawn."""
        return list(self._rows)

    @property
    def selected(self) -> TraceRow | None:
        """The row under the cursor (the run's row, a step's or an attempt's)."""
        if not self._rows or not 0 <= self.cursor_row < len(self._rows):
            return None
        return self._rows[self.cursor_row]

    def select(self, key: str) -> None:
        if key in self.keys:
            self.move_cursor(row=self.keys.index(key), animate=False)

    def show(
        self,
        trace: Trace,
        now: float,
        statuses: dict[str, str] | None = None,
        axis: tuple[float, float] | None = None,
    ) -> None:
        """Draw `trace` as of `now`; see `trace_rows` for `statuses` and `axis`."""
        self._trace, self._now, self._statuses, self._axis = trace, now, statuses, axis
        self._redraw()

    def toggle_expanded(self, node_id: str) -> None:
        self.expanded ^= {node_id}
        self._redraw()

    def on_resize(self, event: events.Resize) -> None:
        self._redraw()

    def _redraw(self) -> None:
        trace = self._trace
        if trace is None or not self.is_mounted:
            return
        total = self.size.width or self.app.size.width
        name_width = node_width(trace)
        width = timeline_width(total, name_width)
        rows = trace_rows(trace, self._now, width, self.expanded, self._statuses, self._axis)
        heading = axis_label(trace, self._now, width, self._axis)
        layout = (name_width, width, heading)
        if layout == self._layout and [r.key for r in rows] == self.keys:
            self._update_cells(rows)
            return
        selected = self.selected.key if self.selected else None
        with self.app.batch_update():
            self.clear(columns=True)
            self.add_column("NODE", width=name_width, key="node")
            self.add_column("STATUS", width=STATUS_WIDTH, key="status")
            self.add_column("#", width=ATTEMPTS_WIDTH, key="attempts")
            self.add_column(heading, width=width, key="timeline")
            self.add_column("TIME", width=TIME_WIDTH, key="time")
            for row in rows:
                self.add_row(*row.cells, key=row.key)
        self._rows, self._layout = rows, layout
        if selected is not None:
            self.select(selected)

    def _update_cells(self, rows: list[TraceRow]) -> None:
        with self.app.batch_update():
            for index, (old, new) in enumerate(zip(self._rows, rows, strict=True)):
                for column, (before, after) in enumerate(zip(old.cells, new.cells, strict=True)):
                    if before != after:
                        self.update_cell_at(Coordinate(index, column), after)
        self._rows = rows
