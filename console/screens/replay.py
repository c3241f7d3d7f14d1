"""Replay: a run's history one event at a time, with the run as it was just after that event.

← → step, home and end jump, space plays at a speed (+ −). The waterfall grows on the
whole run's time axis up to the event shown; the steps' states and the run's context (its
input and each step's output, what its expressions read) come from GetRunAt, which the
control plane derives from history alone without executing anything. `f` forks a new run
from the step of the event shown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from rich.text import Text
from surefoot.v1 import run_pb2
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Header, Log, Static

from console import keys, run_keys
from console.client import ControlPlane
from console.footer import KeyFooter
from console.inspector import Inspector
from console.render import event_line
from console.run_actions import RunActions
from console.run_client import RunClient
from console.run_details import (
    context_of,
    error_of,
    status_name,
    step_sections,
    value_of,
    when,
)
from console.screens.polling import ConnectionLine, PollingScreen
from console.screens.run import part
from console.trace import RUN_ROW, Trace, event_data, seconds
from console.trace_table import TraceTable

# Events per second when playing.
SPEEDS = (1.0, 2.0, 5.0, 10.0, 20.0)
WIDE_COLUMNS = 140
assert run_keys  # its declarations are what keys.bindings() below reads


# Moving through history is what this screen is for: these keys win over the focused
# table's and inspector's own uses of them (scrolling, folding).
MOVES = ("replay.next", "replay.previous", "replay.first", "replay.last", "replay.play")


def _bindings(*ids: str) -> list[Binding]:
    return [binding for binding in keys.bindings(*ids) if isinstance(binding, Binding)]


class ReplayScreen(PollingScreen):
    BINDINGS = (
        PollingScreen.BINDINGS
        + [replace(binding, priority=True) for binding in _bindings(*MOVES)]
        + keys.bindings("replay.faster", "replay.slower", "replay.fork", "replay.panel")
    )
    DEFAULT_CSS = """
    ReplayScreen #replay-header {
        height: auto; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis;
    }
    ReplayScreen #body { height: 1fr; layout: vertical; }
    ReplayScreen #main { height: auto; max-height: 60%; }
    ReplayScreen #trace { height: auto; max-height: 100%; }
    ReplayScreen #side { height: 1fr; min-height: 5; border-top: solid $accent; }
    ReplayScreen.-wide #body { layout: horizontal; }
    ReplayScreen.-wide #main { height: 1fr; max-height: 100%; }
    ReplayScreen.-wide #trace { height: 1fr; }
    ReplayScreen.-wide #side {
        height: 1fr; width: 45%; border-top: none; border-left: solid $accent;
    }
    ReplayScreen #inspector, ReplayScreen #events { height: 1fr; }
    """

    def __init__(
        self, control_plane: ControlPlane, run_id: str, *, client: RunClient | None = None
    ) -> None:
        super().__init__(control_plane)
        self.run_id = run_id
        self.client = client or RunClient(control_plane)
        self.events: list[run_pb2.HistoryEvent] = []
        self.run: run_pb2.Run | None = None
        # Index in `events` of the event shown (0: the first).
        self.position = 0
        # The snapshot shown: its seq (0 until the first arrives), and those read already.
        self.shown_seq = 0
        self.snapshots: dict[int, run_pb2.RunSnapshot] = {}
        self.trace = Trace()
        self.speed = 1
        self._player: Timer | None = None
        self.actions = RunActions(self)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionLine(id="connection")
        yield Static(f"replay of run {self.run_id}: reading its history…", id="replay-header")
        with Container(id="body"):
            with Vertical(id="main"):
                yield TraceTable(id="trace")
            with ContentSwitcher(initial="inspector", id="side"):
                yield Inspector(id="inspector")
                yield Log(id="events", highlight=False)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = f"replay {self.run_id}"
        self.set_class(self.app.size.width >= WIDE_COLUMNS, "-wide")
        self.query_one(TraceTable).focus()
        super().on_mount()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE_COLUMNS, "-wide")

    def on_unmount(self) -> None:
        self.client.close()

    async def poll(self) -> None:
        """The history once (a replay shows what was; a live run's later events are read
        again only when the end of what was read is reached)."""
        if self.events and self.position < len(self.events) - 1:
            return
        after = self.events[-1].seq if self.events else 0
        fresh = await self.attempt(self.client.history(self.run_id, after), polling=True)
        if self.run is None:
            self.run = await self.attempt(self.client.get_run(self.run_id), polling=True)
        if not fresh:
            return
        first = not self.events
        self.events.extend(event for event in fresh if event.seq > after)
        if (log := part(self, Log)) is not None:
            log.write_lines([event_line(event) for event in fresh])
        if first:
            self.go_to(0)
        else:
            self._show()

    # -- moving ---------------------------------------------------------------------------

    @property
    def event(self) -> run_pb2.HistoryEvent | None:
        return self.events[self.position] if self.events else None

    def go_to(self, position: int, *, playing: bool = False) -> None:
        """Show the event at `position`; a move made by hand stops the playing."""
        if not playing and self._player is not None:
            self._stop()
        if not self.events:
            return
        position = max(0, min(position, len(self.events) - 1))
        if position < self.position or not self.trace.last_seq:
            self.trace = Trace()  # backwards: rebuilt from the first event
        self.position = position
        self.trace.extend(self.events[: position + 1])
        self._show()
        self._fetch_snapshot()

    def action_step(self, delta: int) -> None:
        self.go_to(self.position + delta)

    def action_first(self) -> None:
        self.go_to(0)

    def action_last(self) -> None:
        self.go_to(len(self.events) - 1)

    def action_play(self) -> None:
        if self._player is not None:
            self._stop()
            return
        if self.position >= len(self.events) - 1:
            self.go_to(0)
        self._player = self.set_interval(1 / SPEEDS[self.speed], self._play_one)
        self._show_header()

    def _play_one(self) -> None:
        if self.position >= len(self.events) - 1:
            self._stop()
            return
        self.go_to(self.position + 1, playing=True)

    def _stop(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
        self._show_header()

    def action_speed(self, delta: int) -> None:
        self.speed = max(0, min(len(SPEEDS) - 1, self.speed + delta))
        if self._player is not None:
            self._player.stop()
            self._player = self.set_interval(1 / SPEEDS[self.speed], self._play_one)
        self._show_header()

    def action_panel(self) -> None:
        switcher = self.query_one(ContentSwitcher)
        switcher.current = "events" if switcher.current == "inspector" else "inspector"

    async def action_fork(self) -> None:
        event = self.event
        if event is None or not event.node_id:
            self.say("this event is not a step's: move to one (← →) to fork from it", "warning")
            return
        await self.actions.fork(event.node_id, edit=False, at_seq=event.seq)

    @property
    def selected_node(self) -> str | None:
        """The node of the event shown: what a fork starts from."""
        event = self.event
        return event.node_id or None if event is not None else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # A history has no list to filter: `/` is left out of the footer and does nothing.
        if action == "filter_prompt":
            return False
        return super().check_action(action, parameters)

    # -- GetRunAt -------------------------------------------------------------------------

    @work(exclusive=True, group="snapshot")
    async def _fetch_snapshot(self) -> None:
        event = self.event
        if event is None:
            return
        seq = event.seq
        if seq not in self.snapshots:
            snapshot = await self.attempt(self.client.run_at(self.run_id, seq))
            if snapshot is None:
                return
            self.snapshots[seq] = snapshot
        # The operator may have moved on while it was read: show it only if still current.
        if self.event is not None and self.event.seq == seq:
            self.shown_seq = seq
            self._show()

    # -- drawing --------------------------------------------------------------------------

    def _show(self) -> None:
        event = self.event
        if event is None:
            return
        snapshot = self.snapshots.get(event.seq)
        statuses = None
        if snapshot is not None:
            statuses = {step.node_id: _step_status(step) for step in snapshot.steps}
            statuses[RUN_ROW] = status_name(snapshot.status)
        table, inspector = part(self, TraceTable), part(self, Inspector)
        if table is None or inspector is None:
            return
        table.show(self.trace, seconds(event.time), statuses, self._axis())
        if event.node_id:
            table.select(event.node_id)
        self._show_header()
        inspector.show(self._sections(event, snapshot))

    def _axis(self) -> tuple[float, float]:
        first, last = seconds(self.events[0].time), seconds(self.events[-1].time)
        return first, max(last, first + 1e-3)

    def _show_header(self) -> None:
        event = self.event
        for header in self.query("#replay-header").results(Static):
            if event is None:
                continue
            playing = f"▶ {SPEEDS[self.speed]:g}/s" if self._player else "❚❚"
            title = Text(f"replay {self.run_id}  event {event.seq} of {self.events[-1].seq}  ")
            title.append(playing, "bold")
            lines = [title, Text(event_line(event), "bold cyan")]
            snapshot = self.snapshots.get(event.seq)
            if snapshot is not None and snapshot.seq == event.seq:
                state = f"run {status_name(snapshot.status)} at {snapshot.current_node or '-'}"
                lines.append(Text(state))
            else:
                lines.append(Text("reading the run as it was…", "bright_black"))
            header.update(Text("\n", no_wrap=True, overflow="ellipsis").join(lines))

    def _sections(self, event: run_pb2.HistoryEvent, snapshot: Any) -> dict[str, Any]:
        sections: dict[str, Any] = {
            "event": {
                "seq": event.seq,
                "type": run_pb2.EventType.Name(event.type).removeprefix("EVENT_TYPE_"),
                "time": when(event.time),
                "node": event.node_id or None,
                "attempt": event.attempt or None,
                "principal": event.principal or None,
                "data": event_data(event) or None,
            }
        }
        if snapshot is None:
            return sections
        sections["context"] = context_of(snapshot)
        step = next((s for s in snapshot.steps if s.node_id == event.node_id), None)
        if step is not None:
            for name, value in step_sections(step, step.node_id, None).items():
                if value is not None:
                    sections["step" if name == "step" else f"step {name}"] = value
        sections["run"] = {
            "status": status_name(snapshot.status),
            "current node": snapshot.current_node or None,
            "error": error_of(snapshot.last_error),
            "output": value_of(snapshot.output),
        }
        if snapshot.notes:
            sections["notes"] = list(snapshot.notes)
        return sections


def _step_status(step: run_pb2.Step) -> str:
    return run_pb2.StepStatus.Name(step.status).removeprefix("STEP_STATUS_")
