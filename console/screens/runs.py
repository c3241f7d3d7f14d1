"""The first screen: the runs of the namespace, live.

WatchRuns sends the runs the filter selects (newest first, up to `LIVE_LIMIT`) and then each
run as its changes commit, on this control plane or another: the table follows with no poll,
the cursor staying on its run. Scrolling past the last row loads older runs (ListRuns pages);
`total` counts every match. Above the table: how many runs are in each status (counted by
the stream itself, in each of its messages) and the filter (`/`: status, workflow, id prefix,
time range, free text). `o` sorts the loaded rows by another column. `space` marks runs for a
bulk cancel, abandon, pause, resume or fork: a durable operation whose dry run comes first
(console/screens/run_action.py); without marks, the bulk action takes the runs the filter
selects.

A control plane without WatchRuns (UNIMPLEMENTED) is read with ListRuns every second, and
its counts are ListRuns totals, one per status, every few seconds.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from rich.text import Text
from surefoot.v1 import operation_service_pb2 as opb
from surefoot.v1 import run_pb2
from surefoot.v1 import workflow_service_pb2 as ws
from textual import events
from textual.app import ComposeResult
from textual.widgets import DataTable, Header, Static

from console import keys, run_keys
from console.client import ConsoleError, ControlPlane
from console.footer import KeyFooter
from console.live_runs import RunsChanged, RunsFollower
from console.live_table import LiveTable
from console.prompt import PromptModal
from console.run_client import RunClient
from console.runs_view import (
    FILTER_HINT,
    SORTS,
    STATUSES,
    WIDE_COLUMNS,
    RunsFilter,
    columns,
    count_line,
    counts_line,
    parse_runs_filter,
    run_row,
    sorted_runs,
)
from console.screens.operations import OperationScreen
from console.screens.polling import ConnectionLine, PollingScreen
from console.screens.run import RunScreen, part
from console.screens.run_action import RunActionModal
from console.stream_follower import StreamState

# Runs the first message of the stream holds: two screens of a tall terminal. Older ones are
# loaded as the cursor nears the end; every row is costly to add to the table (each cell is
# measured), and a filter paints only once they are all in.
LIVE_LIMIT = 100
MORE_PAGE = 200
COUNT_EVERY_SECONDS = 5.0
# Load older runs when the cursor is this close to the last row.
NEAR_END_ROWS = 3
assert run_keys  # its declarations are what keys.bindings() below reads


class RunsScreen(PollingScreen):
    BINDINGS = PollingScreen.BINDINGS + keys.bindings(
        "runs.open",
        "runs.mark",
        "runs.mark_all",
        "runs.sort",
        "runs.reverse",
        "runs.cancel",
        "runs.abandon",
        "runs.pause",
        "runs.resume",
        "runs.fork",
    )
    DEFAULT_CSS = """
    RunsScreen #counts { height: auto; padding: 0 1; }
    RunsScreen #filters, RunsScreen #count { height: 1; padding: 0 1; }
    RunsScreen #filters { color: $text-muted; }
    RunsScreen #count { color: $text-muted; }
    RunsScreen LiveTable { height: 1fr; }
    """

    def __init__(self, control_plane: ControlPlane, *, client: RunClient | None = None) -> None:
        super().__init__(control_plane)
        self.client = client or RunClient(control_plane)
        self.filter = RunsFilter()
        self.runs: dict[str, run_pb2.Run] = {}
        self.total: int | None = None
        self.counts: dict[str, int] = {}
        self.marked: set[str] = set()
        self.sort_by = "created"
        self.descending = True
        self.live = "connecting"
        # A control plane without WatchRuns: ListRuns on each poll instead.
        self.polled = False
        self.follower: RunsFollower | None = None
        self.more_token = ""
        self._loading_more = False
        self._counted_at = 0.0
        self.wide = False
        # What the lines around the table show (`_put`), by selector.
        self._lines: dict[str, str | Text] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Static("counting…", id="counts")
        yield Static("", id="filters", markup=False)
        self.wide = self.app.size.width >= WIDE_COLUMNS
        yield LiveTable(columns(self.wide), id="runs")
        yield Static("loading…", id="count", markup=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        self.table.focus()
        self._show_filter()
        self._follow()
        super().on_mount()

    def on_unmount(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.client.close()

    @property
    def table(self) -> LiveTable:
        return self.query_one("#runs", LiveTable)

    async def on_resize(self, event: events.Resize) -> None:
        wide = event.size.width >= WIDE_COLUMNS
        if wide == self.wide or not self.is_mounted:
            return
        self.wide = wide
        # Other columns: a new table, the cursor taken to the same run.
        selected = self.table.selected_key
        await self.table.remove()
        table = LiveTable(columns(wide), id="runs")
        await self.mount(table, after=self.query_one("#filters"))
        table.focus()
        self._show(selected)

    # -- the stream -----------------------------------------------------------------------

    def _follow(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.live = "connecting"
        try:
            run_filter = self.filter.run_filter()
        except ValueError as exc:  # an age typed earlier is checked again: say, do not follow
            self.say(str(exc), severity="error")
            return
        self.follower = RunsFollower(self.client, run_filter, self, LIVE_LIMIT)
        self.follower.start()

    def on_runs_changed(self, message: RunsChanged) -> None:
        if message.initial:
            self.runs = {change.run.id: change.run for change in message.changes}
            self.more_token = ""
        else:
            for change in message.changes:
                if change.left_filter:
                    self.runs.pop(change.run.id, None)
                else:
                    self.runs[change.run.id] = change.run
        self.total = message.total
        if message.counts is not None:
            self._show_counts(message.counts)
        if message.changes or message.initial:
            self._show()

    def on_stream_state(self, message: StreamState) -> None:
        self.live = "live" if message.text == "live" else message.text
        if message.text == "live":
            # The stream is this screen's only call: what it learns is the header's news.
            self.control_plane.reachable = True
        self.show_header()
        if message.final and message.code == grpc.StatusCode.UNIMPLEMENTED:
            self.polled = True
            self.live = "polled every second (this control plane has no WatchRuns)"
            self.refresh_now()
        elif message.final:
            self.say(f"runs: {message.text}", severity="error")
        self._show_count()

    # -- polling, only when there is no stream: the runs and their counts ------------------

    async def poll(self) -> None:
        if not self.polled:
            return
        run_filter = self.filter.run_filter()
        page = await self.attempt(self.client.list_runs(run_filter, LIVE_LIMIT), polling=True)
        if page is not None:
            self.runs = {run.id: run for run in page.runs}
            self.total = int(page.total)
            self._show()
        if time.monotonic() - self._counted_at >= COUNT_EVERY_SECONDS:
            self._counted_at = time.monotonic()
            await self._count()

    async def _count(self) -> None:
        """How many runs each status has, under the filter's other terms: a ListRuns total
        per status, for a control plane whose stream does not count them."""
        base = self.filter.run_filter()

        async def count(status: str) -> int:
            by_status = ws.RunFilter()
            by_status.CopyFrom(base)
            del by_status.statuses[:]
            by_status.statuses.append(run_pb2.RunStatus.Value(f"RUN_STATUS_{status}"))
            return await self.client.count(by_status)

        try:
            found = await asyncio.gather(*(count(status) for status in STATUSES))
        except ConsoleError:
            return  # the connection line says why; the counts shown stay
        self._show_counts(dict(zip(STATUSES, found, strict=True)))

    def _show_counts(self, counts: dict[str, int]) -> None:
        self.counts = counts
        # Its height follows the text (it wraps at 80 columns): a layout when it changes.
        self._put("#counts", counts_line(counts, sum(counts.values())), layout=True)

    def _put(self, selector: str, content: str | Text, layout: bool = False) -> None:
        """Show `content` in a line above or below the table, if it changed: each update
        repaints the screen, and a stream sends many messages that change nothing here."""
        if self._lines.get(selector) == content:
            return
        self._lines[selector] = content
        for widget in self.query(selector).results(Static):
            widget.update(content, layout=layout)

    # -- drawing --------------------------------------------------------------------------

    def _show(self, select: str | None = None) -> None:
        if not self.is_mounted:
            return
        ordered = sorted_runs(self.runs.values(), self.sort_by, self.descending)
        # The last column takes what the others leave (they take about 60 cells narrow).
        width = max(20, self.size.width - (100 if self.wide else 60))
        rows = [(run.id, run_row(run, self.wide, run.id in self.marked, width)) for run in ordered]
        query = self.filter.query
        if query.text:
            rows = [(key, cells) for key, cells in rows if query.matches(cells)]
        if (table := part(self, LiveTable)) is None:
            return
        table.show(rows)
        if select is not None and select in table.keys:
            table.move_cursor(row=table.keys.index(select), animate=False)
        self._show_count(len(rows))

    def _show_count(self, shown: int | None = None) -> None:
        loaded = len(self.runs)
        shown = loaded if shown is None else shown
        self._put("#count", count_line(shown, loaded, self.total, len(self.marked), self.live))

    def _show_filter(self) -> None:
        typed = str(self.filter) or "none"
        arrow = "↓" if self.descending else "↑"
        line = f"filter: {typed} · sorted by {self.sort_by} {arrow}   (/ filter · o sort)"
        self._put("#filters", line)

    # -- keys -----------------------------------------------------------------------------

    def action_filter_prompt(self) -> None:
        def apply(typed: str | None) -> None:
            if typed is None:
                return
            try:
                self.filter = parse_runs_filter(typed)
            except ValueError as exc:
                self.say(str(exc), severity="error")
                return
            self.runs, self.total, self.marked = {}, None, set()
            self._show()
            self._show_filter()
            self._follow()
            if self.polled:
                self._counted_at = 0.0
                self.refresh_now()

        self.app.push_screen(PromptModal("/", str(self.filter), hint=FILTER_HINT), apply)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        run_id = self.table.selected_key
        if run_id:
            self.app.push_screen(RunScreen(self.control_plane, run_id))

    def action_mark(self) -> None:
        run_id = self.table.selected_key
        if run_id is None:
            self.say("no run under the cursor", severity="warning")
            return
        self.marked ^= {run_id}
        self._show()

    def action_mark_all(self) -> None:
        shown = set(self.table.keys)
        self.marked = set() if shown <= self.marked else self.marked | shown
        self._show()

    def action_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self._show()
        self._show_filter()

    def action_reverse(self) -> None:
        self.descending = not self.descending
        self._show()
        self._show_filter()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        # A click on a heading sorts by it (a second click reverses).
        by = {"RUN": "id", "WORKFLOW": "workflow", "STATUS": "status", "CREATED": "created"}
        chosen = by.get(str(event.label), "updated" if str(event.label) == "UPDATED" else "")
        if chosen:
            self.descending = not self.descending if chosen == self.sort_by else True
            self.sort_by = chosen
            self._show()
            self._show_filter()

    def action_bulk(self, action: str) -> None:
        if self.marked:
            selection = opb.RunSelection(run_ids=sorted(self.marked))
            described = f"{len(self.marked)} marked runs"
        elif self.filter.selects:
            selection = opb.RunSelection(filter=self.filter.run_filter())
            described = f"every run matching {self.filter}"
        else:
            self.say("mark runs (space) or filter them (/) first", severity="warning")
            return

        def started(operation: opb.Operation | None) -> None:
            if operation is None:
                return
            self.marked = set()
            self._show()
            self.say(f"operation {operation.id} started: {operation.kind}")
            self.app.push_screen(OperationScreen(self.control_plane, operation.id))

        self.app.push_screen(RunActionModal(self.client, selection, action, described), started)

    # -- older runs, as the cursor reaches the end ----------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.table.row_count - NEAR_END_ROWS:
            self._want_more()
        self._show_count()

    def _want_more(self) -> None:
        if self._loading_more or self.total is None or len(self.runs) >= self.total:
            return
        self._loading_more = True
        self.run_worker(self._load_more(), group="more")

    async def _load_more(self) -> None:
        try:
            run_filter = self.filter.run_filter()
            token = self.more_token
            # The first page is read from the newest run: as many as are shown, and more.
            size = MORE_PAGE if token else min(1000, len(self.runs) + MORE_PAGE)
            page = await self.attempt(self.client.list_runs(run_filter, size, token))
            if page is None:
                return
            for run in page.runs:
                self.runs.setdefault(run.id, run)
            self.more_token = page.next_page_token
            self.total = max(int(page.total), len(self.runs))
            self._show()
        finally:
            self._loading_more = False
