"""One run: what it is and what it waits for, its trace as a live waterfall, a JSON inspector
of the run, a step or an attempt, its history, and the operator's actions on it.

The trace is drawn from the history that WatchRun streams (console/live_history.py): a new
event shows in the waterfall as soon as it is committed, with no key press and no poll. The
header (status, blocked-on) comes from GetRun, read again when events arrive and every
second (what a run waits for changes without events: a heartbeat late, a worker gone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from rich.text import Text
from surefoot.v1 import audit_service_pb2, run_pb2
from textual import events
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Header, Log, Static

from console import keys, run_keys
from console.client import ConsoleError, ControlPlane
from console.footer import KeyFooter
from console.inspector import Inspector
from console.live_history import HistoryArrived, HistoryFollower
from console.render import chain_alarm, event_line
from console.render_ai import ai_section
from console.run_actions import RunActions
from console.run_client import RunClient
from console.run_details import (
    attempt_sections,
    blocked_on_lines,
    run_sections,
    step_sections,
    title_line,
)
from console.screens.polling import ConnectionLine, PollingScreen
from console.stream_follower import StreamState
from console.trace import RUN_ROW, Trace, event_data, seconds
from console.trace_table import TraceTable
from console.waterfall import legend

# Wider than this, the inspector sits beside the trace instead of under it.
WIDE_COLUMNS = 140
assert run_keys  # its declarations are what keys.bindings() below reads
W = TypeVar("W", bound=Widget)


def part(screen: Screen[Any], kind: type[W]) -> W | None:
    """The screen's widget of `kind`; None once the screen is being taken down (the answer
    of a call made before that has nothing left to be shown on)."""
    found = screen.query(kind)
    return found.first() if found else None


class RunScreen(PollingScreen):
    BINDINGS = PollingScreen.BINDINGS + keys.bindings(
        "run.expand",
        "run.panel",
        "run.retry",
        "run.retry_edited",
        "run.skip",
        "run.pause",
        "run.cancel",
        "run.abandon",
        "run.fork",
        "run.fork_edited",
        "run.approve",
        "run.reject",
        "run.again",
        "run.replay",
    )
    # Narrow: the inspector under the trace, or the history instead (`i`). Wide: the
    # inspector beside the trace and the history under it.
    DEFAULT_CSS = """
    RunScreen #run-header {
        height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    RunScreen #body { height: 1fr; layout: vertical; }
    RunScreen #main { height: auto; max-height: 60%; }
    RunScreen #trace { height: auto; max-height: 100%; }
    RunScreen #legend { height: 1; padding: 0 1; display: none; }
    RunScreen #history { height: 1fr; min-height: 5; border-top: solid $accent; display: none; }
    RunScreen #side { height: 1fr; min-height: 5; border-top: solid $accent; }
    RunScreen #inspector { height: 1fr; }
    RunScreen.-history #main { height: auto; }
    RunScreen.-history #history { display: block; }
    RunScreen.-history #side { display: none; }
    RunScreen.-wide #body { layout: horizontal; }
    RunScreen.-wide #main { height: 1fr; max-height: 100%; }
    RunScreen.-wide #trace { height: 1fr; }
    RunScreen.-wide #legend { display: block; }
    RunScreen.-wide #history { display: block; height: 35%; }
    RunScreen.-wide #side {
        display: block; height: 1fr; width: 45%; border-top: none; border-left: solid $accent;
    }
    """

    def __init__(
        self,
        control_plane: ControlPlane,
        run_id: str,
        *,
        client: RunClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(control_plane)
        self.run_id = run_id
        self.client = client or RunClient(control_plane)
        # What "now" is for the spans still open (the tests' snapshots fix it).
        self.clock = clock
        self.trace = Trace()
        self.events: list[run_pb2.HistoryEvent] = []
        self.run: run_pb2.Run | None = None
        # APPROVAL_REQUESTED / APPROVAL_DECIDED attributes by node, for the inspector.
        self.approvals: dict[str, dict[str, Any]] = {}
        self.stream_state = "connecting"
        self.chain: audit_service_pb2.RunVerification | None = None
        self._verified_seq = -1
        self.follower = HistoryFollower(self.client, run_id, self)
        self.actions = RunActions(self)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Static(f"run {self.run_id}", id="run-header", markup=False)
        with Container(id="body"):
            with Vertical(id="main"):
                yield TraceTable(id="trace")
                yield Static(legend(), id="legend")
                yield Log(id="history", highlight=False)
            with Vertical(id="side"):
                yield Inspector(id="inspector")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = f"run {self.run_id}"
        self._fit(self.app.size.width)
        self.query_one(TraceTable).focus()
        self.follower.start()
        # Open spans (a running attempt, a wait) grow while nothing happens.
        self.set_interval(1.0, self._redraw_open)
        super().on_mount()

    def on_unmount(self) -> None:
        self.follower.stop()
        self.client.close()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        self.set_class(width >= WIDE_COLUMNS, "-wide")

    # -- the live history ----------------------------------------------------------------

    def on_history_arrived(self, message: HistoryArrived) -> None:
        if not message.events:
            return
        self.events.extend(message.events)
        self.trace.extend(message.events)
        for event in message.events:
            self._note_approval(event)
        if (log := part(self, Log)) is not None:
            log.write_lines([event_line(event) for event in message.events])
        self._draw_trace()
        # The header and the inspector follow from GetRun, asked again now.
        self.refresh_now()

    def on_stream_state(self, message: StreamState) -> None:
        self.stream_state = message.text
        if message.final:
            self.say(f"history of {self.run_id}: {message.text}", severity="error")
        self._show_header()

    def _note_approval(self, event: run_pb2.HistoryEvent) -> None:
        kind = run_pb2.EventType.Name(event.type)
        if kind == "EVENT_TYPE_APPROVAL_REQUESTED":
            self.approvals[event.node_id] = {"requested": event_data(event)}
        elif kind == "EVENT_TYPE_APPROVAL_DECIDED":
            decided = event_data(event) | {"principal": event.principal}
            decided.pop("shown", None)  # shown once, under "requested"
            self.approvals.setdefault(event.node_id, {})["decided"] = decided

    def _redraw_open(self) -> None:
        if not self.trace.ended and self.trace.start is not None:
            self._draw_trace()

    def _draw_trace(self) -> None:
        if (table := part(self, TraceTable)) is None:
            return
        table.show(self.trace, self.clock())
        self._show_inspector()

    # -- GetRun ----------------------------------------------------------------------------

    async def poll(self) -> None:
        run = await self.attempt(self.client.get_run(self.run_id), polling=True)
        if run is None:
            return
        self.run = run
        for step in run.steps:
            for attempt in step.attempts:
                if attempt.outcome == run_pb2.ATTEMPT_OUTCOME_RUNNING:
                    started = seconds(attempt.started_at)
                    self.trace.note_running(
                        step.node_id, attempt.number, started, attempt.worker_id
                    )
        self._draw_trace()
        if self.trace.last_seq != self._verified_seq:
            self._verified_seq = self.trace.last_seq
            # No verdict (a server without AuditService) is nothing to alarm about.
            with suppress(ConsoleError):
                self.chain = await self.control_plane.verify_run(self.run_id)
        self._show_header()
        self._show_inspector()

    def _show_header(self) -> None:
        lines = [Text(f"run {self.run_id}")]
        limit = 4 if self.has_class("-wide") else 2
        if self.run is not None:
            lines = [Text(title_line(self.run), "bold")]
            lines += [Text(line) for line in blocked_on_lines(self.run, limit)]
        if self.stream_state not in ("live", "connecting"):
            lines.append(Text(f"history: {self.stream_state}", "yellow"))
        if self.chain is not None and not self.chain.ok:
            lines.append(Text(chain_alarm(self.chain), "bold red"))
        # One line each, cut at the edge: the trace keeps the rows (the inspector's run row
        # has what blocks it in full).
        text = Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
        for header in self.query("#run-header").results(Static):
            header.update(text)

    # -- the inspector ---------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_inspector()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_expand()

    def _show_inspector(self) -> None:
        inspectors = list(self.query("#inspector").results(Inspector))
        if not inspectors:
            return
        table = part(self, TraceTable)
        row = table.selected if table is not None else None
        if row is None or row.node_id == RUN_ROW:
            sections = run_sections(self.run) if self.run is not None else {}
        elif row.attempt is not None:
            sections = attempt_sections(self.step(row.node_id), row.attempt)
            sections["ai"] = ai_section(self.events, row.node_id, row.attempt)
        else:
            approval = self.approvals.get(row.node_id)
            sections = step_sections(self.step(row.node_id), row.node_id, approval)
            # An AI step's model calls (prompt, reply, errors, repairs), from its history.
            sections["ai"] = ai_section(self.events, row.node_id)
        inspectors[0].show(sections)

    def step(self, node_id: str) -> run_pb2.Step | None:
        if self.run is None:
            return None
        return next((step for step in self.run.steps if step.node_id == node_id), None)

    @property
    def selected_node(self) -> str | None:
        """The step under the cursor (an attempt's row means its step); None on the run row."""
        table = part(self, TraceTable)
        row = table.selected if table is not None else None
        return None if row is None or row.node_id == RUN_ROW else row.node_id

    # -- keys -----------------------------------------------------------------------------

    def action_expand(self) -> None:
        node = self.selected_node
        if node is not None:
            table = self.query_one(TraceTable)
            table.toggle_expanded(node)
            table.select(node)

    def action_panel(self) -> None:
        self.toggle_class("-history")

    def action_replay(self) -> None:
        # Imported here: the replay screen imports this module.
        from console.screens.replay import ReplayScreen

        self.app.push_screen(ReplayScreen(self.control_plane, self.run_id))

    async def action_retry(self) -> None:
        await self.actions.retry(edit=False)

    async def action_retry_edited(self) -> None:
        await self.actions.retry(edit=True)

    async def action_skip(self) -> None:
        await self.actions.skip()

    async def action_pause(self) -> None:
        await self.actions.pause_or_resume()

    async def action_cancel(self) -> None:
        await self.actions.cancel(compensate=False)

    async def action_abandon(self) -> None:
        await self.actions.cancel(compensate=True)

    async def action_fork(self) -> None:
        await self.actions.fork(self.selected_node, edit=False)

    async def action_fork_edited(self) -> None:
        await self.actions.fork(self.selected_node, edit=True)

    async def action_decide(self, approve: bool) -> None:
        await self.actions.decide(approve)

    async def action_again(self) -> None:
        await self.actions.again()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # One run has no list to filter: `/` is left out of its footer and does nothing.
        if action == "filter_prompt":
            return False
        return super().check_action(action, parameters)
